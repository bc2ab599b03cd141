#!/usr/bin/env bash
# `make soak N=20 [INFRA=infra.yml] [FORCE=1]`: N cold applies in a row of one infra.yml,
# each from nothing (`make destroy FORCE=1` first), in a throw-away tree beside the
# repository's playbooks. Reports every failure with its task and host, the time of each
# run, the answers the connection had to read again (ADR-046), and a summary line.
# The infra's own Incus objects are deleted before each run: FORCE=1 is needed when some
# already exist. The last run's instances are left up. Logs: .soak/<infra name>/run-<i>.log.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
infra=${1:-infra.yml}
runs=${2:-5}
force=${3:-}
log_dir="$repo/.soak/$(basename "$infra" .yml)"
lab=$(mktemp -d /tmp/anklume-soak.XXXXXX)
trap 'rm -rf "$lab"; nft delete table inet anklumesoak 2>/dev/null' EXIT

# The runs below are make calls of their own in the lab, on the lab's infra.yml: nothing
# of this make's command line (INFRA=..., N=...) may leak into them.
unset MAKEFLAGS MAKELEVEL MFLAGS INFRA N

die() { printf 'soak: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }

[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "N=$runs is not a positive number of runs; e.g. make soak N=20"
[ -f "$infra" ] || die "$infra does not exist; give INFRA=<file>"
for f in site.yml snapshot.yml ansible.cfg roles plugins scripts collections Makefile .venv; do
  ln -s "$repo/$f" "$lab/$f"
done
cp "$infra" "$lab/infra.yml"
"$repo/.venv/bin/python" "$repo/scripts/generate.py" "$lab/infra.yml" --output "$lab" >/dev/null ||
  die "$infra does not sync (see the line above); fix it first"
# Provisioning roles reuse the repository's caches (wheelhouse, collections); the isolation
# rules go to a table of the soak's own, never the real `inet anklume`.
printf 'admin_bootstrap_cache_dir: %s\nincus_nftables_table: anklumesoak\n' \
  "$repo/.cache/admin_bootstrap" >>"$lab/group_vars/all.yml"

existing=$(cd "$lab" && "$repo/.venv/bin/python" - <<'EOF'
import json, subprocess, yaml
doc = yaml.safe_load(open("group_vars/all.yml"))
declared = {(d["project"], m) for d in doc["anklume_domains"].values() for m in d["machines"]}
out = subprocess.run(["incus", "query", "/1.0/instances?all-projects=true"],
                     capture_output=True, text=True, check=True).stdout
have = {(u.split("project=")[-1] if "project=" in u else "default",
         u.split("/")[-1].split("?")[0]) for u in json.loads(out)}
print(" ".join(f"{p}/{n}" for p, n in sorted(declared & have)))
EOF
) || die "cannot list the Incus instances (is Incus up? make host)"
if [ -n "$existing" ] && [ "$force" != 1 ]; then
  die "$(wc -w <<<"$existing") instances of $infra exist ($(cut -d' ' -f1-3 <<<"$existing")...); each run deletes them first: add FORCE=1 to go on"
fi

mkdir -p "$log_dir"
rm -f "$log_dir"/run-*.log
times=()
failed=0
reread=0
for ((i = 1; i <= runs; i++)); do
  log="$log_dir/run-$i.log"
  (cd "$lab" && make --no-print-directory -o .venv/.installed destroy FORCE=1 INFRA=infra.yml) >"$log.destroy" 2>&1 ||
    { echo "soak: run $i: make destroy failed, see $log.destroy" >&2; exit 1; }
  start=$(now)
  (cd "$lab" && ANSIBLE_NOCOLOR=1 make --no-print-directory -o .venv/.installed apply INFRA=infra.yml) >"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  times+=("$secs")
  lost=$(grep -c 'incus exec lost the answer' "$log")
  reread=$((reread + lost))
  if [ "$rc" -eq 0 ]; then
    printf 'soak: run %d/%d: ok in %s s (answers read again: %d)\n' "$i" "$runs" "$secs" "$lost"
  else
    failed=$((failed + 1))
    printf 'soak: run %d/%d: FAILED (exit %d) in %s s, log %s\n' "$i" "$runs" "$rc" "$secs" "$log"
    # Each failure with the task it happened in and its host.
    awk '/^TASK \[/ { task = $0; sub(/^TASK \[/, "", task); sub(/\] \**$/, "", task) }
         /^(fatal|failed): \[/ { host = $2; gsub(/[\[\]:]/, "", host)
                                 printf "soak:   %s on %s\n", task, host }' "$log"
  fi
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
  if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
printf 'soak: %d runs of %s, %d failed, median %s s (min %s, max %s), answers read again: %d\n' \
  "$runs" "$infra" "$failed" "$median" "$(printf '%s\n' "${times[@]}" | sort -n | head -1)" \
  "$(printf '%s\n' "${times[@]}" | sort -n | tail -1)" "$reread"
[ "$failed" -eq 0 ]
