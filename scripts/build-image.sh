#!/usr/bin/env bash
# Build the local AnKLuMe Debian image with debootstrap and import it into
# Incus. Offline path for labs and CI: only the Debian mirror is needed.
# Usage: build-image.sh [ALIAS]   (FORCE=1 rebuilds an existing alias)
set -euo pipefail

alias_name=${1:-${ANKLUME_IMAGE:-anklume/debian-12}}
suite=${ANKLUME_IMAGE_SUITE:-bookworm}
# Baked in so that roles work with no network inside the instances. systemd-resolved
# asks the resolver DHCP names (the bridge's, or a gateway's: ADR-093), not the host's copy.
packages=${ANKLUME_IMAGE_PACKAGES:-python3,python3-apt,python3-venv,systemd,systemd-sysv,systemd-resolved,udev,dbus,iproute2,iputils-ping,netcat-openbsd,procps,locales,tzdata,ca-certificates,git,sudo,less}

log() { printf 'image: %s\n' "$*"; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 2; }
# shellcheck source=scripts/image-import.sh
. "$(dirname "$0")/image-import.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap missing: run 'make host' first"
incus admin waitready --timeout 5 >/dev/null 2>&1 || die "Incus is not running: run 'make host' first"

if incus image info "$alias_name" >/dev/null 2>&1; then
  if [ "${FORCE:-0}" != 1 ]; then
    log "alias ${alias_name} exists: nothing to do (FORCE=1 rebuilds)"
    exit 0
  fi
  log "FORCE=1: rebuilding ${alias_name}"
fi

mirror=${ANKLUME_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/anklume-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

log "debootstrap ${suite} from ${mirror} (about a minute)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

log "configuring network, locale and cleanup"
mkdir -p "$rootfs/etc/systemd/network"
cat >"$rootfs/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
DHCP=yes
NET
chroot "$rootfs" systemctl enable systemd-networkd systemd-resolved >/dev/null 2>&1
# Names go to the stub of systemd-resolved, which asks the DHCP-given resolver.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' "$rootfs/etc/locale.gen"
chroot "$rootfs" locale-gen >/dev/null
: >"$rootfs/etc/machine-id"
echo "localhost" >"$rootfs/etc/hostname"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

mkdir -p "$work/meta/templates"
cat >"$work/meta/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  os: debian
  release: ${suite}
  variant: anklume
  description: AnKLuMe Debian ${suite} (debootstrap, offline)
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
META
echo '{{ container.name }}' >"$work/meta/templates/hostname.tpl"
printf '127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n' >"$work/meta/templates/hosts.tpl"

tar -C "$work/meta" -czf "$work/meta.tar.gz" .
pack_rootfs "$rootfs" "$work/rootfs.tar.zst"

import_under_alias "$work/meta.tar.gz" "$work/rootfs.tar.zst" "$alias_name"
log "imported ${alias_name} ($(du -h "$work/rootfs.tar.zst" | cut -f1))"
