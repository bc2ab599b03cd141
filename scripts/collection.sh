#!/usr/bin/env bash
# `make collection`: the Ansible side as the installable collection anklume.incus (ADR-054).
# Builds the archive, checks what it holds, installs it into an empty collections path,
# runs one of its modules from there with an empty ansible.cfg (so nothing of this checkout
# is found), then runs `ansible-test sanity` on the installed copy. One line per step, a
# summary, non-zero on the first failed step. The work folder is kept when a step fails.
# Needs: .venv (make venv); for the module run the local Incus (skipped outside CI without
# it); for sanity, PyPI once: ansible-test installs its pinned linters in its own venvs
# under ~/.ansible/test, reused afterwards.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
bin=$repo/.venv/bin
in_ci() { [[ "${CI:-}" =~ ^(1|true|TRUE|yes)$ ]]; }

work=$(mktemp -d /tmp/anklume-collection.XXXXXX)
root=$work/collections/ansible_collections/anklume/incus
: >"$work/empty.cfg"
# Only the installed copy is visible: no ansible.cfg of this checkout, no collections/ link.
export ANSIBLE_CONFIG=$work/empty.cfg ANSIBLE_COLLECTIONS_PATH=$work/collections
# ansible-test's pip otherwise ends its own uninstall with a root warning it cannot print.
export PIP_ROOT_USER_ACTION=ignore
summary=()

step() {  # step <name> <command...>: run, time, print one line; stop at the first failure
  local name=$1 start=$SECONDS
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    local last
    last=$(tail -n 1 "$work/$name.log")
    summary+=("$(printf '  %-8s ok %4ds  %s' "$name" $((SECONDS - start)) "$last")")
    printf 'collection: %s ok (%ds): %s\n' "$name" $((SECONDS - start)) "$last"
  else
    printf 'collection: %s FAILED (%ds); from %s:\n' "$name" $((SECONDS - start)) "$work/$name.log" >&2
    if [ "$name" = sanity ]; then
      # Every finding (up to 100), then ansible-test's list of the failed tests.
      { grep '^ERROR: ' "$work/$name.log" | head -n 100; sed -n '/^FATAL: The /,$p' "$work/$name.log"; } >&2
      printf '%s\n' \
        "collection: findings in plugins/ are the plugins' to fix (docs, argument specs, pylint);" \
        "collection: an entry in tests/sanity/ignore-2.19.txt is only for a finding with a stated reason" >&2
    else
      grep -v '^WARNING: .*locale' "$work/$name.log" | tail -n 60 >&2
    fi
    printf 'collection: FAILED at %s (work folder kept: %s)\n' "$name" "$work" >&2
    exit 1
  fi
}

build() {
  "$bin/ansible-galaxy" collection build --output-path "$work/dist" "$repo"
}

# The archive holds the collection and nothing of the checkout around it (galaxy.yml build_ignore).
check_contents() {
  local archive listing path
  archive=$(echo "$work"/dist/anklume-incus-*.tar.gz)
  listing=$(tar -tzf "$archive")
  for path in MANIFEST.json FILES.json meta/runtime.yml README.md CHANGELOG.md docs/ARCHITECTURE.md \
      plugins/modules/incus_instance.py plugins/action/inprocess.py \
      plugins/module_utils/incus_client.py plugins/connection/anklume_incus.py \
      plugins/callback/anklume_plan.py roles/incus_instances/tasks/main.yml \
      tests/sanity/ignore-2.19.txt; do
    grep -qx "$path" <<<"$listing" || { echo "missing from the archive: $path"; return 1; }
  done
  if grep -E '^(\.|inventory/|group_vars/|host_vars/|anklume/|scripts/|molecule/|tests/(unit|integration)/)|/molecule/' <<<"$listing"; then
    echo "the archive holds files of the checkout, not of the collection (above)"
    return 1
  fi
  printf '%s: %s files, %s\n' "${archive##*/}" "$(grep -cv '/$' <<<"$listing")" "$(du -h "$archive" | cut -f1)"
}

install() {
  "$bin/ansible-galaxy" collection install --offline --no-deps -p "$work/collections" \
    "$work"/dist/anklume-incus-*.tar.gz
  test -f "$root/plugins/modules/incus_instance.py"
}

# A read-only call through the in-process action plugin, the module and module_utils of the
# installed copy: the bridges Incus has, no change (check mode, nothing declared).
run_module() {
  "$bin/ansible-doc" anklume.incus.incus_instance | head -n 3
  if ! incus query /1.0 >/dev/null 2>&1; then
    if in_ci; then echo "CI=true and no reachable Incus"; return 1; fi
    echo "warning: no reachable Incus here: module run skipped (ansible-doc loaded it)"
    return 0
  fi
  (cd "$work" && "$bin/ansible" localhost -o --check -m anklume.incus.incus_network \
    -a '{"networks": [], "report_orphans": true, "owner": "anklume"}') | tee "$work/module.out"
  grep -q 'SUCCESS' "$work/module.out" || return 1
  # The same module packed by AnsiballZ and run by the system python3, as for any connection
  # but local (a chroot into / needs root): its module_utils imports must travel with it.
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$work" && "$bin/ansible" all -i /, -c community.general.chroot -o --check \
      -e ansible_python_interpreter=/usr/bin/python3 -m anklume.incus.incus_network \
      -a '{"networks": [], "report_orphans": true, "owner": "anklume"}') | tee "$work/ansiballz.out"
    grep -q 'SUCCESS' "$work/ansiballz.out" || return 1
  fi
  echo "anklume.incus.incus_network ran from $work/collections (in process and AnsiballZ, check mode)"
}

# ansible-test runs from the installed collection's root. Its dependency community.general
# comes from the venv's ansible package, linked beside it (the import test needs it there).
sanity() {
  local python
  bash scripts/ansible_test_pip.sh
  python=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  ln -s "$("$bin/python" -c 'import ansible_collections.community as c; print(c.__path__[0])')" \
    "$work/collections/ansible_collections/community"
  (cd "$root" && "$bin/ansible-test" sanity --venv --python "$python" --color no) || return 1
  echo "$(grep -c '^Running sanity test' "$work/sanity.log") sanity tests passed on Python $python"
}

echo "collection: work folder $work"
step build build
step contents check_contents
step install install
step module run_module
step sanity sanity
echo "collection: summary"
printf '%s\n' "${summary[@]}"
rm -rf "$work"
echo "collection: anklume.incus builds, installs, runs and passes ansible-test sanity"
