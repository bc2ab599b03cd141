#!/usr/bin/env python3
"""The daily commands behind the Makefile: ``scripts/ops.py [--check] TARGET``.

Runs with the system Python too (help and the variable checks need only the standard
library), so `make help` and `make host` work before the virtualenv exists.
The logic lives in anklume/ops/ (ADR-071).
"""

import os
import sys

# realpath: a lab tree links scripts/ in; the package sits beside the real folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from anklume.ops.main import main

if __name__ == "__main__":
    sys.exit(main())
