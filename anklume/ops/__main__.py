"""``python -m anklume.ops``: see anklume/ops/main.py."""

import sys

from anklume.ops.main import main

sys.exit(main())
