"""``python -m anklume.ai test|develop``: what scripts/ai-test-loop.sh and ai-develop.sh run."""

import sys

from anklume.ai.cli import main

if __name__ == "__main__":
    sys.exit(main())
