#!/usr/bin/env bash
# Turn this machine into an Incus host for AnKLuMe, idempotently.
# Installs incus, nftables, debootstrap and python3-venv when missing (and xpra's client
# when infra.yml declares a gui machine), starts the daemon,
# and makes sure a `default` storage pool and root disk exist.
# Every step says whether it changed something; a second run changes nothing.
set -euo pipefail

log() { printf 'host: %s\n' "$*"; }
die() { printf 'host: error: %s\n' "$*" >&2; exit 2; }
changed=0

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo make host)"
os_release=${ANKLUME_OS_RELEASE:-/etc/os-release}  # overridable for tests
[ -r "$os_release" ] || die "cannot read ${os_release}: unsupported distribution"
# shellcheck disable=SC1090  # system file, not part of the repository
. "$os_release"

incus_apt_suite() {
  case "${ID}:${VERSION_ID:-}" in
    debian:12) echo "bookworm-backports" ;;
    debian:1[3-9] | ubuntu:2[4-9].*) echo "" ;;
    *) die "unsupported distribution ${PRETTY_NAME:-$ID}: use Debian 12+, or Ubuntu 24.04+" ;;
  esac
}

ensure_backports() {
  local suite=$1
  grep -rqs "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local mirror="http://deb.debian.org/debian"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  cat >/etc/apt/sources.list.d/anklume-backports.sources <<SRC
Types: deb
URIs: ${mirror}
Suites: ${suite}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  log "added apt suite ${suite}"
  changed=1
}

install_packages() {
  local suite=$1 missing=()
  command -v incus >/dev/null || missing+=(incus)
  command -v nft >/dev/null || missing+=(nftables)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v ip >/dev/null || missing+=(iproute2)
  # Recommended by incus, needed for every managed bridge (DHCP and DNS).
  command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
  # Recommended by incus: gives containers a correct view of /proc.
  command -v lxcfs >/dev/null || missing+=(lxcfs)
  # The images are packed with zstd, which Incus unpacks for every container it creates
  # (scripts/image-import.sh); make backup asks Incus for zstd exports.
  command -v zstd >/dev/null || missing+=(zstd)
  # make backup ENCRYPT= and restore-backup KEY= stream archives through age.
  command -v age >/dev/null || missing+=(age)
  # make graph lays the isolation drawing out with Graphviz's dot.
  command -v dot >/dev/null || missing+=(graphviz)
  # `make venv` runs `python3 -m venv`: Debian and Ubuntu ship ensurepip (and the pip the
  # venv gets) in python3-venv, which also brings python3 itself where it is missing.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  local target=()
  [ -n "$suite" ] && target=(-t "$suite")
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${target[@]}" "${missing[@]}" >/dev/null
  changed=1
}

# Incus's production settings: every container's systemd and every bridge's
# dnsmasq takes inotify instances; the kernel default (128) runs out after a
# dozen containers ("dnsmasq: failed to create inotify: Too many open files").
ensure_sysctl() {
  local key want have
  for pair in fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=1048576 \
    kernel.keys.maxkeys=2000 vm.max_map_count=262144; do
    key=${pair%%=*} want=${pair#*=}
    have=$(sysctl -n "$key" 2>/dev/null) || continue
    if [ "$have" -lt "$want" ]; then
      sysctl -qw "$key=$want" || die "cannot set $key=$want"
      log "raised $key from $have to $want"
      changed=1
    fi
  done
  if [ -d /etc/sysctl.d ] && [ ! -f /etc/sysctl.d/60-anklume.conf ]; then
    printf '%s\n' "# AnKLuMe: Incus production limits (scripts/host.sh)" \
      fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=1048576 \
      kernel.keys.maxkeys=2000 vm.max_map_count=262144 >/etc/sysctl.d/60-anklume.conf
    log "wrote /etc/sysctl.d/60-anklume.conf (the limits survive a reboot)"
    changed=1
  fi
}

# shellcheck source=scripts/detach.sh
. "$(dirname "$0")/detach.sh"

daemon_ready() { incus admin waitready --timeout 1 >/dev/null 2>&1; }

# A gui machine's windows are drawn here by xpra's client (docs/desktop.md), so the host
# needs it once the description (or the tree rendered from it) declares `gui: true`.
# declares KEY: a machine of the tree or of the description says `KEY: true`.
declares() {
  local infra=${ANKLUME_INFRA:-infra.yml}
  grep -qsx "instance_$1: true" host_vars/*.yml && return 0
  grep -qsE "^[^#]*([{,[:space:]]|^)$1:[[:space:]]*(true|yes|True)([[:space:],}]|\$)" "$infra"
}

ensure_gui_client() {
  declares gui || return 0
  local pkg missing=() wanted=(xpra python3-gi-cairo)
  # `audio: true`: the client plays the machine's sound through GStreamer's pulse plugin.
  declares audio && wanted+=(python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-pulseaudio)
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "xpra client present: make gui shows the gui machines' windows here"
    return 0
  fi
  log "installing ${missing[*]}: infra.yml declares a gui machine, whose windows xpra draws here"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  changed=1
}

start_daemon() {
  daemon_ready && return 0
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    log "starting incus.service"
    systemctl enable --now incus.socket incus.service
  else
    log "starting incusd (no systemd as PID 1)"
    mkdir -p /var/log/incus
    bash "$(dirname "$0")/start-lxcfs.sh"
    detach /var/log/incus/incusd.out /usr/libexec/incus/incusd --group root \
      --logfile /var/log/incus/incusd.log
  fi
  incus admin waitready --timeout 60 || die "incusd did not become ready: see /var/log/incus/incusd.log"
  changed=1
}

ensure_storage() {
  if ! incus storage show default >/dev/null 2>&1; then
    incus storage create default dir >/dev/null
    log "created storage pool default (dir)"
    changed=1
  fi
  if ! incus profile device get default root pool >/dev/null 2>&1; then
    incus profile device add default root disk path=/ pool=default >/dev/null
    log "added root disk to the default profile"
    changed=1
  fi
}

suite=$(incus_apt_suite) || exit 2
[ -n "$suite" ] && ! command -v incus >/dev/null && ensure_backports "$suite"
ensure_gui_client
install_packages "$suite"
ensure_sysctl
start_daemon
ensure_storage
if [ "$changed" -eq 0 ]; then
  log "already an Incus host: nothing changed ($(incus version | awk '/Server/ {print "incus " $3}'))"
else
  log "ready ($(incus version | awk '/Server/ {print "incus " $3}'))"
fi
