#!/usr/bin/env bash
# Gather the NVIDIA driver's user space into one directory (bin/, lib64/) that AnKLuMe mounts
# read-only into GPU containers (ADR-064, the "mount" method), on a host whose driver is
# installed the usual way (libraries under /usr/lib, nvidia-smi in /usr/bin) and that has
# no NVIDIA container toolkit. Run as root on the Incus host; run it again after a driver
# update (the files must match the loaded kernel module's version).
#   sudo scripts/gpu-userspace.sh [DIR]        (default /usr/local/nvidia)
set -euo pipefail

dest=${1:-/usr/local/nvidia}
version=$(cat /sys/module/nvidia/version 2>/dev/null) || {
    echo "gpu-userspace: no loaded nvidia kernel module (/sys/module/nvidia/version): install the driver first" >&2
    exit 2
}
smi=$(command -v nvidia-smi) || { echo "gpu-userspace: nvidia-smi not found on this host" >&2; exit 2; }
mkdir -p "$dest/bin" "$dest/lib64"
# Copies, not links: a link would point into the host's /usr inside the container.
cp -L "$smi" "$dest/bin/"
ldconfig -p | awk '/(libcuda|libnvidia-|libnvcuvid|libnvoptix)[^ ]*\.so.* \(libc6,x86-64\)/ {print $NF}' \
    | sort -u | while read -r lib; do cp -L "$lib" "$dest/lib64/"; done
echo "$version" >"$dest/VERSION"
echo "gpu-userspace: driver $version: $(find "$dest/lib64" -type f | wc -l) libraries and nvidia-smi in $dest"
