#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests on the real Incus, then
# `make collection` (scripts/collection.sh).
# Sets up the test bed first (make host, make image). With CI=true a test bed
# that cannot be set up is a failure; elsewhere the integration tests are
# skipped with their reason shown.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

in_ci() { [[ "${CI:-}" =~ ^(1|true|TRUE|yes)$ ]]; }

if [ "$(id -u)" -eq 0 ] && bash scripts/host.sh && bash scripts/build-image.sh; then
  echo "test: Incus test bed ready"
elif in_ci; then
  echo "test: error: CI=true and the Incus test bed could not be set up" >&2
  exit 1
else
  echo "test: warning: no Incus test bed (need root and 'make host'); integration tests will be skipped" >&2
fi

.venv/bin/pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: error: pytest collected no test" >&2
fi
# The collection as users install it: build, install apart, run a module, ansible-test sanity.
bash scripts/collection.sh || rc=1
exit "$rc"
