#!/usr/bin/env bash
# Snapshot, restore and delete every instance of a four-domain infra: `make snapshot`,
# `make restore` and `make snapshot-delete` (one bulk module call each) side by side with
# the plain `incus snapshot create|restore|delete` commands, one per instance, in sequence.
# The lab is its own: owner t5bench, domains t5w..t5z, 10.120.20-23.0/24, removed at exit.
# Usage: bench_snapshots.sh   (ROUNDS=3: median of that many rounds; goal: ratio <= 1.3)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${ROUNDS:-3}
domains=(t5w t5x t5y t5z)
nft_table=anklumet5b
declare -A machine_of=([t5w]=t5-bench-adm [t5x]=t5-bench-perso [t5y]=t5-bench-pro [t5z]=t5-bench-lab)

log() { printf 'bench_snapshots: %s\n' "$*" >&2; }

cleanup() {
  local d name
  for d in "${domains[@]}"; do
    if incus project show "$d" >/dev/null 2>&1; then
      for name in $(incus list --project "$d" -f csv -c n); do
        incus config unset "$name" security.protection.delete --project "$d" >/dev/null 2>&1 || true
        incus delete --force "$name" --project "$d" >/dev/null 2>&1 || true
      done
      incus project delete "$d" >/dev/null 2>&1 || true
    fi
    incus network delete "net-$d" >/dev/null 2>&1 || true
  done
  nft delete table inet "$nft_table" >/dev/null 2>&1 || true
  if [ -n "${lab:-}" ]; then rm -rf "$lab"; fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

lab=$(mktemp -d /tmp/anklume-bench-snap.XXXXXX)
trap cleanup EXIT
cleanup_leftovers() { local keep=$lab; lab=""; cleanup; lab=$keep; }
cleanup_leftovers

for f in site.yml snapshot.yml ansible.cfg roles plugins scripts collections Makefile .venv; do
  ln -s "$repo/$f" "$lab/$f"
done
{
  printf 'project_name: t5bench\nglobal:\n  base_subnet: "10.120"\n'
  printf '  default_os_image: "anklume/debian-12"\n  admin_domain: ""\ndomains:\n'
  i=20
  for d in "${domains[@]}"; do
    printf '  %s:\n    subnet_id: %d\n    ephemeral: false\n    machines:\n' "$d" "$i"
    printf '      %s:\n        type: lxc\n        ip: "10.120.%d.10"\n' "${machine_of[$d]}" "$i"
    i=$((i + 1))
  done
} >"$lab/infra.yml"

mk() { make --no-print-directory -C "$lab" -o .venv/.installed "$@" >"$lab/make.log" 2>&1 \
  || { tail -30 "$lab/make.log" >&2; return 1; }; }

log "creating the four-domain lab (make apply TAGS=infra)"
mk sync
# The isolation role runs in the infra phase: keep it off the real `inet anklume` table.
echo "incus_nftables_table: ${nft_table}" >>"$lab/group_vars/all.yml"
# The daemon is shared: one retry rides out a transient error from someone else's work.
mk apply TAGS=infra || { log "apply failed, retrying once"; mk apply TAGS=infra; }

plain() {
  local verb=$1 snap=$2 d
  for d in "${domains[@]}"; do
    incus snapshot "$verb" "${machine_of[$d]}" "$snap" --project "$d" >/dev/null
  done
}

declare -A plain_t anklume_t
for op in create restore delete; do plain_t[$op]=""; anklume_t[$op]=""; done
for r in $(seq 1 "$rounds"); do
  log "round $r/$rounds"
  for who in plain anklume; do
    # Alternate who goes first, so that neither always finds a warm page cache.
    if [ $((r % 2)) -eq 0 ]; then who=$([ "$who" = plain ] && echo anklume || echo plain); fi
    for op in create restore delete; do
      t0=$(now)
      if [ "$who" = plain ]; then
        plain "$op" "plain-$r"
        plain_t[$op]+=" $(elapsed "$t0")"
      else
        case $op in
          create) mk snapshot "NAME=anklume-$r" ;;
          restore) mk restore "NAME=anklume-$r" ;;
          delete) mk snapshot-delete "NAME=anklume-$r" ;;
        esac
        anklume_t[$op]+=" $(elapsed "$t0")"
      fi
    done
  done
done

printf '\nSnapshots of %d instances (4 domains), dir pool, median of %d rounds\n' \
  "${#domains[@]}" "$rounds"
printf '%-10s %16s %18s %8s\n' operation "plain incus (s)" "make target (s)" ratio
for op in create restore delete; do
  # shellcheck disable=SC2086 # word splitting of the per-round list is intended
  p=$(median ${plain_t[$op]})
  # shellcheck disable=SC2086
  a=$(median ${anklume_t[$op]})
  printf '%-10s %16s %18s %8s\n' "$op" "$p" "$a" "$(awk -v a="$a" -v p="$p" 'BEGIN { printf "%.2f", a / p }')"
done
printf 'make target = the whole make snapshot|restore|snapshot-delete run, ansible-playbook start included\n'
