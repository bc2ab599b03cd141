#!/usr/bin/env bash
# Build the GUI variant of the local image (ADR-091): the base image (make image) with xpra
# and a few X11 tools added by apt in a chroot, imported under its own alias. Layered on the
# base rather than a second debootstrap: debootstrap's resolver cannot install xpra
# (dconf-service needs the virtual dbus-session-bus), and the base stays the one place
# that says what every machine gets.
# Usage: build-image-gui.sh [BASE [ALIAS]]   (FORCE=1 rebuilds an existing alias)
set -euo pipefail

base=${1:-${ANKLUME_IMAGE:-anklume/debian-12}}
alias_name=${2:-${base}-gui}
# xpra: the display server of the machine (no Recommends: they pull in ssh, avahi, ...);
# xauth, python3-pil (window icons: xpra's server fails a client without it) and
# python3-lz4 (compression) are Recommends it needs here; xterm, x11-apps, x11-utils,
# xdotool and xclip: a first app and the tools the tests and people use to look inside.
# Sound, for machines with `audio: true` (xpra's Suggests): pulseaudio and pactl (the
# server's own pulseaudio, started only for them), GStreamer's Python bindings and the
# plugins xpra's forwarding uses (opus and vorbis in base, flac and wav in good, pulsesrc
# and pulsesink in gstreamer1.0-pulseaudio). A machine without `audio: true` never starts
# them: its server runs with --pulseaudio=no and sound disabled.
packages=${ANKLUME_GUI_PACKAGES:-xpra xauth python3-pil python3-lz4 xterm x11-apps x11-utils xdotool xclip pulseaudio pulseaudio-utils python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-pulseaudio}

log() { printf 'image-gui: %s\n' "$*"; }
die() { printf 'image-gui: error: %s\n' "$*" >&2; exit 2; }
# shellcheck source=scripts/image-import.sh
. "$(dirname "$0")/image-import.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (chroot needs it)"
incus admin waitready --timeout 5 >/dev/null 2>&1 || die "Incus is not running: run 'make host' first"
incus image info "$base" >/dev/null 2>&1 || die "base image ${base} is missing: run 'make image' first"

if incus image info "$alias_name" >/dev/null 2>&1; then
  if [ "${FORCE:-0}" != 1 ]; then
    log "alias ${alias_name} exists: nothing to do (FORCE=1 rebuilds)"
    exit 0
  fi
  log "FORCE=1: rebuilding ${alias_name}"
fi

work=$(mktemp -d /var/tmp/anklume-image-gui.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir "$work/base" "$work/meta" "$rootfs"

log "unpacking ${base}"
incus image export "$base" "$work/base/" >/dev/null
meta=$(find "$work/base" -name 'meta-*')
[ -n "$meta" ] || die "${base} is not a split image (no metadata tarball)"
tar -C "$work/meta" -xf "$meta"
for f in "$work"/base/*; do
  [ "$f" = "$meta" ] || tar -C "$rootfs" -xf "$f"
done

log "apt-get install ${packages} (about a minute)"
# No service starts in the chroot; the host's resolver for apt, the image's put back after.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
cp -a "$rootfs/etc/resolv.conf" "$work/resolv.conf" 2>/dev/null || true
rm -f "$rootfs/etc/resolv.conf"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
# shellcheck disable=SC2086  # the package list is words
{ chroot "$rootfs" apt-get update -q &&
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -q \
    --no-install-recommends $packages; } >"$work/apt.log" 2>&1 ||
  { tail -20 "$work/apt.log" >&2; die "apt-get in the chroot failed"; }
rm -f "$rootfs/etc/resolv.conf" "$rootfs/usr/sbin/policy-rc.d"
if [ -e "$work/resolv.conf" ] || [ -L "$work/resolv.conf" ]; then
  cp -a "$work/resolv.conf" "$rootfs/etc/resolv.conf"
fi
# xpra's postinst made an SSL key: every instance of the image would share it (no SSL
# socket is used). Its default session script opens an xmessage error window in every
# session: make gui starts apps one by one instead.
rm -f "$rootfs"/etc/xpra/*.pem
sed -i 's|^start = /etc/X11/Xsession true|# &   (anklume: apps are started one by one)|' \
  "$rootfs/etc/xpra/conf.d/60_server.conf"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

sed -i -e "s/^creation_date: .*/creation_date: $(date +%s)/" \
  -e "s/^  variant: .*/  variant: anklume-gui/" \
  -e "s|^  description: .*|  description: AnKLuMe ${base} with xpra (gui machines)|" \
  "$work/meta/metadata.yaml"
tar -C "$work/meta" -czf "$work/meta.tar.gz" .
pack_rootfs "$rootfs" "$work/rootfs.tar.zst"

import_under_alias "$work/meta.tar.gz" "$work/rootfs.tar.zst" "$alias_name"
log "imported ${alias_name} ($(du -h "$work/rootfs.tar.zst" | cut -f1))"
