#!/usr/bin/env bash
# make ai-test: run the tests; when they fail, ask the AI_MODE backend for a fix
# (docs/ai-testing.md). AI_MODE=none (the default) runs exactly `make test`.
# ROLE=<name>: that role's Molecule scenario; AI_TEST_CMD="...": any test command.
# The logic lives in anklume/ai/ (python -m anklume.ai test); this only finds Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# make passes PYTHON (the project's virtualenv); run by hand, .venv or python3.
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m anklume.ai test --role "${ROLE:-}" "$@"
