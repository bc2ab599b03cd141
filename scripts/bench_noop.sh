#!/usr/bin/env bash
# Bench the everyday run: a no-op `make apply` of the shipped infra.yml, provisioning
# included (ADR-058), before and after the roles' state probes, on this machine now.
#   before  the same command from commit BENCH_BEFORE (default: the last commit before
#           the probes), checked out in a temporary worktree
#   after   this tree; and FULL=1 (every provisioning task runs, as before the probes)
# It acts on the shipped infra.yml's own instances: the first apply brings them up if
# they are missing (minutes), every timed run then changes nothing.
# Usage: scripts/bench_noop.sh [RUNS]   (median of RUNS timed runs each; default 5)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
before=${BENCH_BEFORE:-dfbd5a6}
goal=6
out_dir="$repo/.bench"
report="$out_dir/noop.txt"
work=$(mktemp -d /tmp/anklume-bench-noop.XXXXXX)
mkdir -p "$out_dir"

cleanup() {
  git -C "$repo" worktree remove --force "$work/before" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf 'bench: %s\n' "$*" >&2; }

# apply DIR [make variables...]: one no-op run must report 0 changed on every host.
apply() {
  local dir=$1 out
  shift
  out=$(make -C "$dir" --no-print-directory apply INFRA=infra.yml "$@" 2>&1) || {
    printf '%s\n' "$out" | tail -20 >&2
    log "make apply failed in $dir"
    return 1
  }
  if printf '%s\n' "$out" | grep -E ' : ok=' | grep -vq 'changed=0 '; then
    printf '%s\n' "$out" | grep -E ' : ok=' >&2
    log "not a no-op run in $dir"
    return 1
  fi
}

# median_of DIR [make variables...]: median wall seconds of RUNS no-op applies.
median_of() {
  local dir=$1 i start times=()
  shift
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s.%N)
    apply "$dir" "$@"
    times+=("$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')")
  done
  log "$dir $*: ${times[*]}"
  printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", t[int((NR + 1) / 2)] }'
}

log "bringing the shipped infra.yml to its declared state (cold the first time)"
if ! make -C "$repo" --no-print-directory apply INFRA=infra.yml >"$work/cold.log" 2>&1; then
  tail -20 "$work/cold.log" >&2
  log "make apply of the shipped infra.yml failed (see above)"
  exit 1
fi
apply "$repo"

before_s="n/a (commit $before not in this clone)"
if git -C "$repo" cat-file -e "$before^{commit}" 2>/dev/null; then
  git -C "$repo" worktree add --detach "$work/before" "$before" >/dev/null 2>&1
  # The same virtualenv and controller cache (wheelhouse, collection tarballs). An old
  # pyproject.toml, so that make never reinstalls the shared venv from this worktree.
  ln -s "$repo/.venv" "$work/before/.venv"
  touch -d 2000-01-01 "$work/before/pyproject.toml"
  ln -s "$repo/.cache" "$work/before/.cache"
  make -C "$work/before" --no-print-directory apply INFRA=infra.yml >/dev/null 2>&1 || true
  apply "$work/before"
  before_s="$(median_of "$work/before") s"
fi
full_s=$(median_of "$repo" FULL=1)
after_s=$(median_of "$repo")

{
  echo "No-op make apply of the shipped infra.yml ($(nproc) cores; median of $runs; goal < ${goal} s)"
  printf '  %-44s %s\n' "before (commit $before, every task runs)" "$before_s"
  printf '  %-44s %s s\n' "after, FULL=1 (every task runs)" "$full_s"
  printf '  %-44s %s s\n' "after (one state probe per role)" "$after_s"
  awk -v a="$after_s" -v g="$goal" 'BEGIN { print (a < g ? "  goal met" : "  goal NOT met") }'
} | tee "$report"
