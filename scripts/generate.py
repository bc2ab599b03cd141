#!/usr/bin/env python3
"""PSOT generator: infra.yml -> inventory/, group_vars/, host_vars/.

Usage: scripts/generate.py [INFRA_PATH] [--dry-run] [--clean-orphans [--force]] [--output DIR]
The logic lives in the ``anklume`` package (anklume/cli.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from anklume.cli import main

if __name__ == "__main__":
    sys.exit(main())
