#!/usr/bin/env bash
# Bench `make apply` (cold, then no-op) against the fewest plain `incus` commands doing the
# same work, on a four-domain infra (the shipped shape) and on a generated 12-instance one.
# Objects are named b4* / net-b4* (owner b4bench, 10.141.x) and removed before and after.
# Usage: scripts/bench_apply.sh [RUNS]   (no-op runs, median reported; default 3)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
work=$(mktemp -d /tmp/anklume-bench-apply.XXXXXX)
out_dir="$repo/.bench"
mkdir -p "$out_dir"
report="$out_dir/apply.txt"
trap 'cleanup; rm -rf "$work"' EXIT

log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
  local p n
  for p in $(incus project list -f csv -c n | sed 's/ (current)//' | grep '^b4' || true); do
    for n in $(incus list --project "$p" -f csv -c n); do
      incus config unset --project "$p" "$n" security.protection.delete 2>/dev/null || true
      incus delete --force --project "$p" "$n" >/dev/null
    done
    incus project delete "$p" >/dev/null
  done
  for n in $(incus network list -f csv -c n | grep '^net-b4' || true); do
    incus network delete "$n" >/dev/null
  done
  nft delete table inet anklumeb4 2>/dev/null || true
}

# infra.yml with DOMAINS domains of PER machines each.
write_infra() {
  local dir=$1 domains=$2 per=$3 d m
  {
    printf 'project_name: b4bench\nglobal:\n  base_subnet: "10.141"\n'
    printf '  default_os_image: anklume/debian-12\n  admin_domain: ""\n  isolation: true\ndomains:\n'
    for ((d = 0; d < domains; d++)); do
      printf '  b4d%s:\n    subnet_id: %s\n    ephemeral: true\n    machines:\n' "$d" "$d"
      for ((m = 0; m < per; m++)); do
        printf '      b4d%s-m%s:\n        type: lxc\n        ip: "10.141.%s.%s"\n' "$d" "$m" "$d" $((10 + m))
      done
    done
  } >"$dir/infra.yml"
}

setup_lab() {
  local dir=$1 f
  mkdir -p "$dir"
  for f in site.yml ansible.cfg roles plugins scripts collections Makefile .venv; do ln -sfn "$repo/$f" "$dir/$f"; done
  write_infra "$dir" "$2" "$3"
  (cd "$dir" && "$repo/.venv/bin/python" scripts/generate.py infra.yml >/dev/null)
  # The isolation role works on a table of its own here, never the real `inet anklume`.
  echo "incus_nftables_table: anklumeb4" >>"$dir/group_vars/all.yml"
}

# make_apply DIR [make variables...]
make_apply() {
  local dir=$1; shift
  (cd "$dir" && make --no-print-directory -o .venv/.installed apply "$@" >"$work/last.log" 2>&1) || {
    cat "$work/last.log" >&2; exit 1; }
}

# The same work with plain incus commands: bridges, projects, default profiles, launches
# (in parallel), then wait until every instance has its address.
plain() {
  local domains=$1 per=$2 d m pids=()
  for ((d = 0; d < domains; d++)); do
    incus network create "net-b4d$d" ipv4.address="10.141.$d.254/24" ipv4.nat=true \
      ipv6.address=none ipv4.dhcp.ranges="10.141.$d.100-10.141.$d.199" >/dev/null
    incus project create "b4d$d" -c features.images=false -c features.profiles=true >/dev/null
    incus profile device add --project "b4d$d" default root disk path=/ pool=default >/dev/null
    incus profile device add --project "b4d$d" default eth0 nic network="net-b4d$d" name=eth0 >/dev/null
    for ((m = 0; m < per; m++)); do
      incus launch anklume/debian-12 "b4d$d-m$m" --project "b4d$d" \
        -d eth0,ipv4.address="10.141.$d.$((10 + m))" >/dev/null &
      pids+=($!)
    done
  done
  wait "${pids[@]}"
  local want=$((domains * per))
  until [ "$(incus list --all-projects -f csv -c n4 | grep -c '^b4d.*10\.141\.')" -ge "$want" ]; do
    sleep 0.2
  done
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

bench_case() {
  local label=$1 domains=$2 per=$3 lab="$work/$1" t cold cold_rec noop noop_rec plain_s i
  cleanup
  setup_lab "$lab" "$domains" "$per"
  log "$label: make apply TAGS=networks,projects,profiles,instances, cold"
  t=$(now); make_apply "$lab" TAGS=networks,projects,profiles,instances; cold_rec=$(elapsed "$t")
  cleanup
  log "$label: make apply, cold"
  t=$(now); make_apply "$lab"; cold=$(elapsed "$t")
  for ((i = 0; i < runs; i++)); do
    t=$(now); make_apply "$lab"; elapsed "$t"; echo
  done | median >"$work/noop"
  grep -q 'changed=0' "$work/last.log" || log "$label: warning: the no-op apply changed something"
  # The reconciliation alone (without the host nftables role and the provision phase).
  for ((i = 0; i < runs; i++)); do
    t=$(now); make_apply "$lab" TAGS=networks,projects,profiles,instances; elapsed "$t"; echo
  done | median >"$work/noop_rec"
  noop=$(cat "$work/noop"); noop_rec=$(cat "$work/noop_rec")
  cleanup
  log "$label: plain incus commands"
  t=$(now); plain "$domains" "$per"; plain_s=$(elapsed "$t")
  cleanup
  printf '%-24s %8s %9s %8s %10s %8s %12s\n' "$label" "$cold" "$cold_rec" "$plain_s" \
    "$(awk -v a="$cold_rec" -v b="$plain_s" 'BEGIN { printf "%.2fx", a / b }')" "$noop" "$noop_rec"
}

{
  echo "bench_apply: $(date -u +%FT%TZ) $(nproc) cores, incus $(incus --version)," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), no-op = median of $runs"
  echo "cold, noop: make apply (with the host nftables role and the provision phase);" \
    "*-rec: make apply TAGS=networks,projects,profiles,instances (what plain does)"
  printf '%-24s %8s %9s %8s %10s %8s %12s\n' "case" "cold(s)" "cold-rec" "plain(s)" \
    "rec/plain" "noop(s)" "noop-rec(s)"
  bench_case "4-domains-4-instances" 4 1
  bench_case "4-domains-12-instances" 4 3
} | tee "$report"
log "report written to $report"
