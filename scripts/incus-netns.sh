#!/usr/bin/env bash
# A second, independent Incus daemon on this machine, in its own network namespace:
# a real "remote host" (or cluster member) for tests, demos and classes (ADR-068).
#
#   scripts/incus-netns.sh up NAME ADDRESS [--bare]   start it (idempotent)
#   scripts/incus-netns.sh down NAME                  stop it, delete everything it had
#   scripts/incus-netns.sh stop NAME                  stop the daemon only (keeps its data)
#   scripts/incus-netns.sh token NAME CLIENT          print a trust token for CLIENT
#   scripts/incus-netns.sh cluster NAME1 NAME2...     NAME1 founds a cluster, the others join
#   scripts/incus-netns.sh list                       the daemons this script runs
#
# NAME (letters, digits, dash; 8 at most) owns the network namespace ank-NAME, the
# directory /var/lib/anklume-netns/NAME (INCUS_DIR) and the host-side veth rl-NAME.
# Every daemon's veth joins the host bridge anklume-rl (10.199.0.1/24): ADDRESS is an
# address of that subnet, where the daemon listens on HTTPS port 8443. Its bridges,
# dnsmasq and nftables live in its own namespace. --bare: no storage pool (a member
# about to join a cluster). Traffic stays on this machine: a namespace has no default route.
set -euo pipefail

log() { printf 'incus-netns: %s\n' "$*"; }
die() { printf 'incus-netns: error: %s\n' "$*" >&2; exit 2; }

LAB_BRIDGE=anklume-rl
LAB_GATEWAY=10.199.0.1
BASE=/var/lib/anklume-netns
INCUSD=${INCUSD:-/usr/libexec/incus/incusd}
# shellcheck source=scripts/detach.sh
. "$(dirname "$0")/detach.sh"

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and incusd need it)"
}

check_name() {
  [[ "$1" =~ ^[a-z][a-z0-9-]{0,7}$ ]] \
    || die "name '$1': use 1 to 8 lowercase letters, digits or dashes, starting with a letter"
}

check_address() {
  [[ "$1" =~ ^10\.199\.0\.([0-9]{1,3})$ ]] && [ "${BASH_REMATCH[1]}" -ge 2 ] \
    && [ "${BASH_REMATCH[1]}" -le 254 ] \
    || die "address '$1': use one of 10.199.0.2 to 10.199.0.254 (the lab bridge ${LAB_BRIDGE})"
}

in_dir() { INCUS_DIR="$BASE/$1" "${@:2}"; }
answers() { in_dir "$1" incus admin waitready --timeout "${2:-1}" >/dev/null 2>&1; }

ensure_lab_bridge() {
  ip link show "$LAB_BRIDGE" >/dev/null 2>&1 && return 0
  ip link add "$LAB_BRIDGE" type bridge
  ip addr add "$LAB_GATEWAY/24" dev "$LAB_BRIDGE"
  ip link set "$LAB_BRIDGE" up
  log "created lab bridge $LAB_BRIDGE ($LAB_GATEWAY/24)"
}

ensure_netns() {
  local name=$1 address=$2 ns="ank-$1" veth="rl-$1"
  ip netns list | grep -qw "^$ns" || ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$LAB_BRIDGE" up
  fi
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  # No default route: the daemon and its instances reach the lab subnet only, so nothing
  # they send (image index refreshes, DNS) can be forwarded off this machine by the host.
  ip -n "$ns" route del default 2>/dev/null || true
}

# The daemon needs its namespace's view of /sys/class/net (bridges it creates are checked
# there) but the host's cgroup mounts: a fresh sysfs bound over the two net directories
# only, in a private mount namespace, keeps both.
start_daemon() {
  local name=$1 dir="$BASE/$1"
  answers "$name" && return 0
  mkdir -p "$dir/sysfs"
  rm -f "$dir/incusd.out"
  # shellcheck disable=SC2016  # expanded by the inner shell, in the new namespaces
  detach "$dir/incusd.out" nsenter --net="/run/netns/ank-$name" \
    unshare --mount --propagation slave env INCUS_DIR="$dir" sh -c '
      mount -t sysfs sysfs "$INCUS_DIR/sysfs" &&
      mount --bind "$INCUS_DIR/sysfs/class/net" /sys/class/net &&
      mount --bind "$INCUS_DIR/sysfs/devices/virtual/net" /sys/devices/virtual/net &&
      exec "$0" --group root --logfile "$INCUS_DIR/incusd.log"' "$INCUSD"
  answers "$name" 60 || die "incusd of $name did not become ready: see $dir/incusd.out"
  log "started incusd $name (INCUS_DIR=$dir, namespace ank-$name)"
}

cmd_up() {
  local name=$1 address=$2 bare=${3:-}
  check_name "$name"
  check_address "$address"
  need_root
  ensure_lab_bridge
  ensure_netns "$name" "$address"
  start_daemon "$name"
  local want="$address:8443"
  if [ "$(in_dir "$name" incus config get core.https_address)" != "$want" ]; then
    in_dir "$name" incus config set core.https_address "$want"
  fi
  if [ "$bare" != --bare ] && ! in_dir "$name" incus storage show default >/dev/null 2>&1 \
    && [ "$(in_dir "$name" incus config get cluster.https_address)" = "" ]; then
    in_dir "$name" incus storage create default dir >/dev/null
    in_dir "$name" incus profile device add default root disk path=/ pool=default >/dev/null
    log "created storage pool default on $name"
  fi
  log "$name ready: https://$want"
}

# Processes the namespaces do not reach: each container's own, found by its cgroup.
kill_containers() {
  local dir=$1 c
  for c in "$dir"/containers/*; do
    [ -e "$c" ] || continue
    c=${c##*/}
    local procs
    for procs in /sys/fs/cgroup/*/lxc.payload."$c"/cgroup.procs \
      /sys/fs/cgroup/*/lxc.payload."$c"/*/cgroup.procs; do
      [ -r "$procs" ] && xargs -r kill -9 <"$procs" 2>/dev/null || true
    done
  done
}

cmd_stop() {
  local name=$1 dir="$BASE/$1"
  check_name "$name"
  need_root
  if answers "$name"; then
    timeout 120 env INCUS_DIR="$dir" incus admin shutdown >/dev/null 2>&1 || true
  fi
  kill_containers "$dir"
  if ip netns list | grep -qw "^ank-$name"; then
    ip netns pids "ank-$name" | xargs -r kill -9 2>/dev/null || true
  fi
  pkill -9 -f -- "--logfile $dir/incusd.log" 2>/dev/null || true
  log "stopped incusd $name"
}

cmd_down() {
  local name=$1 dir="$BASE/$1"
  cmd_stop "$name"
  ip link del "rl-$name" 2>/dev/null || true
  ip netns del "ank-$name" 2>/dev/null || true
  rm -rf "$dir"
  # The lab bridge goes with the last daemon.
  if ! ls "$BASE"/* >/dev/null 2>&1 && ip link show "$LAB_BRIDGE" >/dev/null 2>&1; then
    ip link del "$LAB_BRIDGE"
  fi
  log "removed $name (namespace, veth, $dir)"
}

cmd_token() {
  local name=$1 client=$2
  check_name "$name"
  need_root
  answers "$name" || die "$name is not running: scripts/incus-netns.sh up $name ADDRESS"
  in_dir "$name" incus config trust add "$client" --quiet
}

cmd_cluster() {
  local founder=$1 member
  shift
  need_root
  answers "$founder" || die "$founder is not running"
  local address
  address=$(in_dir "$founder" incus config get core.https_address)
  if [ "$(in_dir "$founder" incus config get cluster.https_address)" = "" ]; then
    in_dir "$founder" incus config set cluster.https_address "$address"
    in_dir "$founder" incus cluster enable "$founder" >/dev/null
    log "$founder founded a cluster at $address"
  fi
  for member in "$@"; do
    answers "$member" || die "$member is not running"
    if in_dir "$founder" incus cluster show "$member" >/dev/null 2>&1; then
      continue
    fi
    local token member_address
    token=$(in_dir "$founder" incus cluster add "$member" --quiet)
    member_address=$(in_dir "$member" incus config get core.https_address)
    in_dir "$member" incus admin init --preseed <<YAML
cluster:
  enabled: true
  server_name: $member
  server_address: $member_address
  cluster_token: $token
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ""
YAML
    log "$member joined the cluster of $founder"
  done
}

cmd_list() {
  local d
  for d in "$BASE"/*; do
    [ -d "$d" ] || continue
    local name=${d##*/} state=stopped
    answers "$name" && state="running $(in_dir "$name" incus config get core.https_address)"
    printf '%s\t%s\n' "$name" "$state"
  done
}

case "${1:-}" in
  up) [ $# -ge 3 ] || die "usage: up NAME ADDRESS [--bare]"; cmd_up "$2" "$3" "${4:-}" ;;
  down) [ $# -eq 2 ] || die "usage: down NAME"; cmd_down "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: stop NAME"; cmd_stop "$2" ;;
  token) [ $# -eq 3 ] || die "usage: token NAME CLIENT"; cmd_token "$2" "$3" ;;
  cluster) [ $# -ge 3 ] || die "usage: cluster NAME1 NAME2..."; shift; cmd_cluster "$@" ;;
  list) cmd_list ;;
  -h | --help) sed -n '2,17p' "$0" ;;
  *) die "unknown command '${1:-}': use up, down, stop, token, cluster or list (see --help)" ;;
esac
