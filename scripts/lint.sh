#!/usr/bin/env bash
# Every linter at zero: ansible-lint (production profile), yamllint, ruff,
# ShellCheck and mypy (strict on the anklume package and on plugins/, see pyproject.toml).
# Runs them all, then fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=.venv/bin
failed=()

step() {
  local name=$1; shift
  printf 'lint: %s\n' "$name"
  "$@" || failed+=("$name")
}

step ruff "$bin/ruff" check .
# Blank-line rules (E30x) are preview-only in ruff, yet ansible-test's pep8 enforces them on plugins/.
step ruff-blank-lines "$bin/ruff" check --preview --select E30 .
step mypy "$bin/mypy"
# plugins/ as the collection Ansible loads: collections/ links the repository in, so the
# modules' ansible_collections.anklume.incus.* imports resolve to these very files.
step mypy-plugins env MYPYPATH=collections "$bin/mypy" --explicit-package-bases \
  -p ansible_collections.anklume.incus.plugins
step yamllint "$bin/yamllint" --strict .
mapfile -t shell_files < <(find scripts roles .ci -type f \( -name '*.sh' -o -path .ci/run \) 2>/dev/null | sort)
step shellcheck "$bin/shellcheck" "${shell_files[@]}"
step ansible-lint env PATH="$PWD/$bin:$PATH" "$bin/ansible-lint" --profile production --offline -q

if [ ${#failed[@]} -gt 0 ]; then
  printf 'lint: FAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "lint: all clean"
