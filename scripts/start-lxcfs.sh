#!/usr/bin/env bash
# Make sure lxcfs serves DIR (default /var/lib/incus-lxcfs), idempotently.
# lxcfs gives containers a correct view of /proc; Incus works without it,
# so every problem here is a warning, never a failure of `make host`.
# A FUSE mount whose lxcfs process died (a crash, or a machine restored from
# a disk snapshot) answers "Transport endpoint is not connected": it is
# unmounted first, or even `mkdir -p` on it fails.
set -uo pipefail

default_dir=/var/lib/incus-lxcfs
dir=${1:-$default_dir}
# lxcfs locks its pid file and refuses to start while another lxcfs holds
# it: an lxcfs for any other directory gets a pid file of its own.
pidfile=/run/lxcfs.pid
[[ $dir == "$default_dir" ]] || pidfile="/run/lxcfs${dir//\//-}.pid"
log() { printf 'host: %s\n' "$*"; }

command -v lxcfs >/dev/null || exit 0
is_mounted() { awk -v d="$dir" '$2 == d { found = 1 } END { exit !found }' /proc/self/mounts; }

if is_mounted; then
  stat "$dir" >/dev/null 2>&1 && exit 0  # live mount: lxcfs already serves it
  log "unmounting stale lxcfs mount ${dir} (its process is gone)"
  umount -l "$dir" 2>/dev/null || fusermount -uz "$dir" 2>/dev/null || {
    log "warning: cannot unmount stale ${dir}; containers start without lxcfs"
    exit 0
  }
fi
mkdir -p "$dir" /var/log/incus || { log "warning: cannot create ${dir}; containers start without lxcfs"; exit 0; }
# shellcheck source=scripts/detach.sh
. "$(dirname "$0")/detach.sh"
detach /var/log/incus/lxcfs.log lxcfs --pidfile="$pidfile" "$dir"
for _ in $(seq 50); do
  is_mounted && stat "$dir" >/dev/null 2>&1 && { log "started lxcfs on ${dir}"; exit 0; }
  sleep 0.1
done
log "warning: lxcfs did not mount ${dir} (see /var/log/incus/lxcfs.log); containers start without it"
