#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests on the real Incus and `make collection`
# (scripts/collection.sh).
# Sets up the test bed first (make host, make image). With CI=true a test bed
# that cannot be set up is a failure; elsewhere the integration tests are
# skipped with their reason shown. Prints the 20 slowest tests and each phase's wall time.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

in_ci() { [[ "${CI:-}" =~ ^(1|true|TRUE|yes)$ ]]; }

phases=()
phase_start=$SECONDS
phase_done() {  # NAME: record the wall time since the previous phase ended
  phases+=("$(printf '  %-12s %5d s' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}

# The desktop tests (test_gui) draw on an Xvfb of their own through the host's xpra
# client, and read it back with xdotool, xwininfo, ImageMagick's import and xclip.
test_tools() {
  local pkg missing=()
  # test_gui's sound server (a pulseaudio with null devices) and the client's pulse plugin
  for pkg in xpra python3-gi-cairo xvfb xdotool imagemagick x11-utils xclip tcpdump \
    pulseaudio pulseaudio-utils python3-gst-1.0 gstreamer1.0-plugins-base \
    gstreamer1.0-pulseaudio; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "test: installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

if [ "$(id -u)" -eq 0 ] && bash scripts/host.sh && bash scripts/build-image.sh && test_tools; then
  echo "test: Incus test bed ready"
elif in_ci; then
  echo "test: error: CI=true and the Incus test bed could not be set up" >&2
  exit 1
else
  echo "test: warning: no Incus test bed (need root and 'make host'); integration tests will be skipped" >&2
fi
phase_done "test bed"

# Arguments: one pytest run of what they name. None: the whole suite in three runs: the
# modules marked host_wide (tests/conftest.py: they restart the daemon or lxcfs, rebuild the
# image, compare the host's tables), alone, with the collection's check and the unit tests
# beside them; then the other integration modules, each with its own names and subnets.
rc=0
pytest_status() {  # PHASE CODE: keep a run's status
  if [ "$2" -eq 5 ]; then
    echo "test: error: pytest collected no test ($1)" >&2
  fi
  [ "$2" -eq 0 ] || rc=1
}
run_pytest() {  # PHASE ARGS...: one pytest run, its status kept
  local phase=$1
  shift
  echo "test: $phase"
  .venv/bin/pytest --durations=20 "$@"
  pytest_status "$phase" $?
  phase_done "$phase"
}
# The integration modules other than host-wide run a whole module per worker on
# TEST_WORKERS workers (ADR-073); TEST_WORKERS=1 runs everything one after the other.
WORKERS=${TEST_WORKERS:-2}
collection() {  # the collection as users install it: build, install apart, run a module, sanity
  bash scripts/collection.sh || rc=1
  phase_done "collection"
}
if [ "$#" -gt 0 ]; then
  run_pytest "pytest" "$@"
  collection
elif [ "$WORKERS" -le 1 ]; then
  run_pytest "unit" -m unit
  run_pytest "host-wide" -m "not unit and host_wide"
  run_pytest "integration" -m "not unit and not host_wide"
  collection
else
  # The host-wide modules run one at a time and mostly wait on Incus: the collection's check
  # (first: no host-wide module restarts incusd that early) and the unit tests, which need
  # no daemon, take the other cores meanwhile (ADR-094). Their reports come after.
  side=$(mktemp -d)
  (
    bash scripts/collection.sh >"$side/collection.log" 2>&1
    echo $? >"$side/collection.rc"
    .venv/bin/pytest --durations=20 -m unit -n $((WORKERS - 1)) >"$side/unit.log" 2>&1
    echo $? >"$side/unit.rc"
  ) &
  side_pid=$!
  run_pytest "host-wide" -m "not unit and host_wide"
  wait "$side_pid"
  echo "test: collection (beside host-wide)"
  cat "$side/collection.log"
  [ "$(cat "$side/collection.rc" 2>/dev/null)" = 0 ] || rc=1
  echo "test: unit (beside host-wide)"
  cat "$side/unit.log"
  pytest_status "unit" "$(cat "$side/unit.rc" 2>/dev/null || echo 1)"
  rm -rf "$side"
  run_pytest "integration" -m "not unit and not host_wide" -n "$WORKERS" --dist loadfile
fi
echo "test: wall time of each phase"
printf '%s\n' "${phases[@]}"
exit "$rc"
