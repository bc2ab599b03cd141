#!/usr/bin/env bash
# Load the AnKLuMe isolation ruleset on the HOST, safely and only when needed.
#
# Used when Ansible runs in the admin container (incus_nftables_mode=file):
# the role renders the ruleset there; this script, run as root on the host,
# checks it with `nft -c`, loads it in a throwaway network namespace and
# compares that canonical listing with the table the kernel holds; only when
# they differ does it load the file (one atomic transaction). Exit 0 when the
# kernel holds the ruleset, 2 on any error (nothing is loaded then).
#
# Once the kernel holds the ruleset, its sha256 is recorded in this host's Incus server
# configuration (user.anklume.nftables.TABLE.sha256): a controller that drives this host as
# a remote (global.incus_remote) reads it, and its plan says when the rules are missing or
# stale (ADR-069). A cluster shares its configuration but each member has its own kernel:
# there the key names this member (user.anklume.nftables.TABLE.MEMBER.sha256). Where no
# Incus daemon answers here, the record is skipped with a warning.
#
#   scripts/deploy-nftables.sh [--dry-run] [--install-boot] [--from-admin] [FILE]
#
#   FILE            rendered ruleset (default nftables/anklume.nft)
#   --from-admin    read FILE (relative) from the admin machine's tree, where
#                   `make apply` rendered it (ADR-062), through the Incus API
#   --dry-run       check and show the difference; load nothing
#   --install-boot  also copy FILE to /etc/anklume/ and, with systemd, enable
#                   a unit that loads it at boot
#   --no-record     do not record the sha256 in the Incus server configuration
set -euo pipefail

log() { printf 'deploy-nftables: %s\n' "$*"; }
die() { printf 'deploy-nftables: error: %s\n' "$*" >&2; exit 2; }

dry_run=0
install_boot=0
from_admin=0
record=1
file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --install-boot) install_boot=1 ;;
    --from-admin) from_admin=1 ;;
    --no-record) record=0 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$file" ] || die "one FILE only"; file=$1 ;;
  esac
  shift
done
[ "$dry_run" -eq 0 ] || record=0  # a dry run writes nothing, not even the record
root=$(cd "$(dirname "$0")/.." && pwd)
NFT=${NFT:-$(command -v nft || echo /usr/sbin/nft)}

[ "$(id -u)" -eq 0 ] || die "must run as root on the host (nft needs CAP_NET_ADMIN)"
[ -x "$NFT" ] || die "nft not found: install nftables (make host)"

if [ "$from_admin" -eq 1 ]; then
  # The admin machine holds the Incus socket (root on this host already), yet its file is
  # only data here: checked below like any other, and it may touch our table only.
  python=${PYTHON:-$root/.venv/bin/python}
  where=$(cd "$root" && "$python" scripts/admin_tree.py --locate) || exit 2
  read -r project instance tree <<<"$where"
  rel=${file:-nftables/anklume.nft}
  case "$rel" in /* | *..*) die "with --from-admin FILE is relative to the admin tree: $rel" ;; esac
  file=$(mktemp)
  trap 'rm -f "$file"' EXIT
  incus file pull --project "$project" "$instance$tree/$rel" "$file" 2>/dev/null \
    || die "cannot read $tree/$rel in $instance (project $project): run make apply there first"
  log "read $tree/$rel from $instance"
  shown="$instance:$tree/$rel"
fi
file=${file:-$root/nftables/anklume.nft}
shown=${shown:-$file}
[ -r "$file" ] || die "cannot read $file: render it first (make nftables, or the role in the admin container)"

# The table the file manages: the one it deletes before re-creating it.
table=$(awk '$1 == "delete" && $2 == "table" && $3 == "inet" {print $4; exit}' "$file")
[ -n "$table" ] || die "$file has no 'delete table inet NAME': not a ruleset rendered by roles/incus_nftables"
# Only our table: no other table, no `flush ruleset` (Incus's and the distribution's stay).
other=$(awk -v t="$table" '$1 == "flush" && $2 == "ruleset" {print; exit}
  ($1 == "table" || (($1 == "add" || $1 == "delete" || $1 == "flush") && $2 == "table")) {
    f = ($1 == "table") ? $2 : $3; n = ($1 == "table") ? $3 : $4
    if (f != "inet" || n != t) {print; exit}
  }' "$file")
[ -z "$other" ] || die "$file touches more than table inet $table: '$other'"

if ! err=$("$NFT" -c -f "$file" 2>&1); then
  die "nft -c rejected $file: ${err}"
fi
# shellcheck disable=SC2016  # $0/$1 expand in the inner shell, on purpose
if ! wanted=$(unshare --net -- sh -ec '"$0" -f "$1"; "$0" -s list ruleset' "$NFT" "$file" 2>&1); then
  die "loading $file in a scratch network namespace failed: ${wanted}"
fi
live=$("$NFT" -s list table inet "$table" 2>/dev/null || true)

if [ "$live" = "$wanted" ]; then
  log "table inet $table already matches $shown: nothing loaded"
else
  if [ "$dry_run" -eq 1 ]; then
    log "table inet $table differs from $shown (dry run: nothing loaded)"
    diff -u <(printf '%s\n' "$live") <(printf '%s\n' "$wanted") | tail -n +3 || true
    exit 0
  fi
  "$NFT" -f "$file" || die "nft -f $file failed: the previous table is unchanged"
  after=$("$NFT" -s list table inet "$table" 2>/dev/null || true)
  [ "$after" = "$wanted" ] || die "table inet $table does not match $file after loading"
  if [ -z "$wanted" ]; then log "removed table inet $table (isolation off)"; else log "loaded table inet $table from $shown"; fi
fi

# The kernel holds the file: say so to the controllers that reach this host through Incus.
if [ "$record" -eq 1 ] && ! command -v incus >/dev/null 2>&1; then
  log "warning: no incus client here: the loaded ruleset is not recorded"
elif [ "$record" -eq 1 ]; then
  # `incus info` lists the server's environment: a cluster member records for itself alone.
  # No daemon answering: no member name, and the record below says why it failed.
  member=$( { incus info 2>/dev/null || true; } | awk '/^  server_clustered: true/ {c=1}
    /^  server_name:/ {n=$2} END {if (c) print n}')
  key=user.anklume.nftables.$table${member:+.$member}.sha256
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$(incus config get "$key" 2>/dev/null)" = "$sha" ]; then
    :
  elif err=$(incus config set "$key" "$sha" 2>&1); then
    log "recorded $key=$sha in this host's Incus"
  else
    log "warning: cannot record $key in this host's Incus: ${err#Error: }"
  fi
fi

if [ "$install_boot" -eq 1 ] && [ "$dry_run" -eq 0 ]; then
  boot=/etc/anklume/$table.nft
  mkdir -p /etc/anklume
  install -m 0644 "$file" "$boot"
  if [ -d /run/systemd/system ]; then
    unit=anklume-nftables-$table.service
    cat >"/etc/systemd/system/$unit" <<UNIT
# Installed by scripts/deploy-nftables.sh (docs/network-isolation.md).
[Unit]
Description=AnKLuMe domain isolation (nftables table inet $table)
Wants=network-pre.target
Before=network-pre.target incus.service
After=nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$NFT -f $boot

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$unit" >/dev/null
    log "installed $boot and enabled $unit"
  else
    log "installed $boot; no systemd here: have the init system run '$NFT -f $boot' at boot"
  fi
fi
