#!/usr/bin/env bash
# `make bench` part: the Incus-in-Incus test runner (ADR-063), created from nothing (no
# runner, no host-side cache: packages, wheels, image export and tree all fetched) and when
# reused (a second make test-runner-create, which changes nothing). Owns b13-runner in the
# project b13run; deleted at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."

names=(RUNNER=b13-runner RUNNER_PROJECT=b13run)
quiet() { make --no-print-directory "$@" "${names[@]}" >/tmp/anklume-bench-runner.log 2>&1 \
  || { tail -n 40 /tmp/anklume-bench-runner.log >&2; exit 1; }; }
seconds() { local start=$SECONDS; quiet "$@"; echo $((SECONDS - start)); }

trap 'quiet test-runner-destroy' EXIT
quiet test-runner-destroy
cold=$(seconds test-runner-create)
warm=$(seconds test-runner-create)
printf '%-44s %6s\n' "runner" "seconds"
printf '%-44s %6s\n' "created from nothing (downloads included)" "$cold"
printf '%-44s %6s\n' "reused (second create, 0 changed)" "$warm"
