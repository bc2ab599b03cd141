#!/usr/bin/env bash
# `make up`: sync and apply the given infra.yml (host and image are made
# ready by the Makefile first), then print a status table. Runs what exists
# and says plainly what is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
infra=${1:-infra.yml}
py=.venv/bin/python

echo "up: sync ${infra}"
"$py" scripts/generate.py "$infra" --output .

if [ -f site.yml ]; then
  echo "up: apply"
  make --no-print-directory apply INFRA="$infra"
else
  echo "up: site.yml is missing: infrastructure reconciliation is not available yet" >&2
  exit 1
fi

make --no-print-directory status INFRA="$infra"

# The admin machine as a controller (ADR-062): its own copy of this tree, made once.
if "$py" scripts/admin_tree.py --locate >/dev/null 2>&1; then
  make --no-print-directory admin-tree
fi
