#!/usr/bin/env bash
# make ai-develop TASK="...": the AI_MODE backend implements the task on a branch
# feat/<slug>, the tests run, it iterates up to max_retries (docs/ai-testing.md).
# The logic lives in anklume/ai/ (python -m anklume.ai develop); this only finds Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# make passes PYTHON (the project's virtualenv); run by hand, .venv or python3.
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m anklume.ai develop --task "${TASK:-}" --role "${ROLE:-}" "$@"
