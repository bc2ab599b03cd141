#!/usr/bin/env bash
# `make test-sandboxed`: run the tests inside the Incus-in-Incus runner (ADR-063).
#   1. create the runner or bring it up to date (test_runner.yml; no-op when it is)
#   2. run pytest inside it, on the runner's own Incus: one Molecule scenario (ROLE=),
#      the paths in TESTS=, or by default every Molecule scenario and integration test
#   3. copy the JUnit XML and the log back to logs/runner/<time>/
#   4. DESTROY=1: delete the runner afterwards (whatever the result)
# Environment: RUNNER, RUNNER_PROJECT, ROLE, TESTS, DESTROY, PYTHON (the project's venv),
# RUNNER_LOGS (the host folder of the results, logs/runner by default).
set -euo pipefail
cd "$(dirname "$0")/.."

runner=${RUNNER:-anklume-runner}
project=${RUNNER_PROJECT:-dev-test}
python=${PYTHON:-.venv/bin/python}
inner_tree=/root/anklume

fail() { echo "test-sandboxed: error: $*" >&2; exit 2; }

if [ -n "${ROLE:-}" ]; then
  [ -f "roles/$ROLE/molecule/default/molecule.yml" ] \
    || fail "ROLE=$ROLE has no Molecule scenario (roles/$ROLE/molecule/default/molecule.yml)"
  set -- "tests/integration/test_molecule.py::test_molecule_scenario[$ROLE]"
elif [ -n "${TESTS:-}" ]; then
  read -r -a paths <<<"$TESTS"
  for path in "${paths[@]}"; do
    [ -e "${path%%::*}" ] || fail "TESTS names ${path%%::*}, which does not exist"
  done
  set -- "${paths[@]}"
else
  # The runner's own test would need a third level of nesting; the host-setup tests set up
  # the host itself (Debian's mirror, the host's lxcfs), which the offline runner is not.
  host_only=(test_runner.py test_testbed_idempotent.py test_host_lxcfs.py)
  echo "test-sandboxed: left out (host only, run them with make test): ${host_only[*]}"
  set -- tests/integration "${host_only[@]/#/--ignore=tests/integration/}"
fi

playbook() {
  PATH="$(dirname "$python"):$PATH" ANSIBLE_PYTHON_INTERPRETER="$(realpath "$python")" \
    "$(dirname "$python")/ansible-playbook" test_runner.yml \
    -e "dev_test_runner_name=$runner" -e "dev_test_runner_project_name=$project" "$@"
}

echo "test-sandboxed: runner $runner (project $project): create or reuse"
playbook

stamp=$(date -u +%Y%m%dT%H%M%SZ)
inner_logs="$inner_tree/logs/runner/$stamp"
host_logs="${RUNNER_LOGS:-logs/runner}/$stamp"
mkdir -p "$host_logs"
echo "test-sandboxed: pytest $* (inside $runner)"
start=$SECONDS
rc=0
# CI=true: inside the runner a missing Incus fails the tests, never skips them.
# shellcheck disable=SC2016  # $0 and $@ expand in the runner's bash, not here
incus exec "$runner" --project "$project" --cwd "$inner_tree" --env CI=true -- \
  bash -c 'set -o pipefail; mkdir -p "$0" && .venv/bin/pytest -p no:cacheprovider -rA \
    --junitxml="$0/junit.xml" "$@" 2>&1 | tee "$0/pytest.log"' "$inner_logs" "$@" || rc=$?
incus exec "$runner" --project "$project" -- tar -C "$inner_logs" -cf - . | tar -xf - -C "$host_logs"
echo "test-sandboxed: exit $rc in $((SECONDS - start))s; results in $host_logs (junit.xml, pytest.log)"

if [[ "${DESTROY:-}" =~ ^(1|true|yes)$ ]]; then
  playbook -e dev_test_runner_state=absent
fi
exit "$rc"
