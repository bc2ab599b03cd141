#!/usr/bin/env bash
# GPU check on a machine with an NVIDIA GPU and no network (docs/gpu-llm.md, "What is proven
# where"). Two steps:
#   scripts/gpu-check.sh --prepare   here, with network: downloads into .gpu/ the Incus
#                                    packages, the Ansible wheels (Python 3.12) and the
#                                    community.general tarball (about 45 MB)
#   scripts/gpu-check.sh             on the GPU machine, from the project root, .gpu/ beside:
#                                    installs Incus and Ansible offline, builds a tiny image
#                                    from the machine's own /usr, runs our `make apply` on a
#                                    two-container GPU infra (gpu_policy: shared), and shows
#                                    nvidia-smi inside both containers, again after a restart;
#                                    then a second apply (changed=0), the plan line naming the
#                                    GPU, and the exclusive-policy warning.
# Everything is also written to $OUT/gpu-check.log when OUT is set.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GPU=$ROOT/.gpu
LAB=/tmp/anklume-gpu-lab
VENV=/opt/anklume/ansible
IMAGE=gpu-check/mini
PROJECT=gpucheck

prepare() {
    mkdir -p "$GPU/wheels"
    sh "$ROOT/../shared/gpu-check/fetch-debs.sh" "$GPU/debs"
    (cd "$GPU/debs" && apt-get download make >/dev/null)
    pip download ansible-core==2.19.14 pip --python-version 3.12 --only-binary=:all: \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 -d "$GPU/wheels" -q
    ansible-galaxy collection download community.general:11.4.2 -p "$GPU/collections" \
        || cp "$ROOT"/.cache/admin_bootstrap/community.general-11.4.2.tar.gz "$GPU/"
    du -sh "$GPU"
}

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

install_incus() {
    local todo=() d
    for d in "$GPU"/debs/*.deb; do
        dpkg -s "$(dpkg-deb -f "$d" Package)" >/dev/null 2>&1 || todo+=("$d")
    done
    if [ ${#todo[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive dpkg -i --force-depends --force-confold "${todo[@]}" \
            >/tmp/dpkg.log 2>&1 || tail -5 /tmp/dpkg.log
    fi
    mkdir -p /var/log/incus
    incus info >/dev/null 2>&1 || (setsid /usr/libexec/incus/incusd --group root \
        --logfile /var/log/incus/incusd.log >/dev/null 2>&1 &)
    incus admin waitready --timeout 60 || { echo "incusd did not start"; exit 1; }
    incus storage show default >/dev/null 2>&1 || incus storage create default dir
    incus profile device show default | grep -q '^root:' \
        || incus profile device add default root disk path=/ pool=default
    incus info | grep -E '^ *(driver|driver_version|instance_types):' -A2 | head -12
}

install_ansible() {
    [ -x "$VENV/bin/ansible-playbook" ] && return
    python3 -m venv --without-pip "$VENV" || return 1
    "$VENV/bin/python" "$(find "$GPU/wheels" -name 'pip-*.whl' | head -1)/pip" install -q --no-index \
        --find-links "$GPU/wheels" ansible-core || return 1
    # The tarball holds community/general/ as installed (what admin_bootstrap pushes too).
    mkdir -p /usr/share/ansible/collections/ansible_collections
    tar -C /usr/share/ansible/collections/ansible_collections -xzf \
        "$(find "$GPU" -name 'community.general-*.tar.gz' | head -1)"
}

# An image without init: the containers run `sleep infinity` and see the machine's /usr
# read-only (the GPU machine reaches no image server, and our Debian image is too big to carry).
build_image() {
    incus image show "$IMAGE" >/dev/null 2>&1 && return
    local r=/tmp/mini
    mkdir -p $r/{dev,proc,sys,tmp,etc,root,run,usr}
    for l in bin sbin lib lib64; do ln -sfn usr/$l $r/$l; done
    cp /etc/passwd /etc/group $r/etc/
    printf 'architecture: x86_64\ncreation_date: %s\nproperties: {os: mini}\n' "$(date +%s)" \
        >/tmp/metadata.yaml
    tar -C /tmp -czf /tmp/meta.tgz metadata.yaml
    tar -C $r -czf /tmp/root.tgz .
    incus image import /tmp/meta.tgz /tmp/root.tgz --alias "$IMAGE" >/dev/null
}

machine() {
    cat <<EOF
      $1:
        type: lxc
        gpu: true
        profiles: [default, nvidia-compute]
        config:
          raw.lxc: "lxc.init.cmd = /usr/bin/sleep infinity"
        devices:
          usr: {type: disk, source: /usr, path: /usr, readonly: "true"}
EOF
}

write_lab() {
    rm -rf "$LAB" && mkdir -p "$LAB"
    local n
    for n in site.yml ansible.cfg roles plugins collections scripts anklume Makefile; do
        ln -s "$ROOT/$n" "$LAB/$n"
    done
    { printf 'project_name: gpucheck\nglobal:\n  base_subnet: "10.155"\n'
      printf '  default_os_image: %s\n  gpu_policy: %s\ndomains:\n' "$IMAGE" "$1"
      printf '  %s:\n    subnet_id: 1\n    ephemeral: true\n    machines:\n' "$PROJECT"
      shift; for n in "$@"; do machine "$n"; done; } >"$LAB/infra.yml"
}

# Variables a user would add beside the managed section: the containers have no DHCP client
# (no address to wait for), and the isolation rules are only rendered here.
lab_vars() {
    printf 'incus_instances_wait: false\nincus_nftables_mode: file\n' >>"$LAB/group_vars/all.yml"
}

smi() {
    local c
    for c in "$@"; do
        echo "-- $c: nvidia-smi -L"
        incus exec --project "$PROJECT" "$c" -- nvidia-smi -L; echo "rc=$?"
        # Where the line above fails, tell whether the instance's environment.* reached exec.
        # shellcheck disable=SC2016  # expanded inside the container, on purpose
        incus exec --project "$PROJECT" "$c" -- sh -c 'echo "PATH=$PATH"; ls /usr/local/nvidia' \
            | head -3
    done
}

run_check() {
    step "machine"
    uname -r; nvidia-smi -L; python3 --version
    ls -l /dev/kvm /dev/vhost-vsock /dev/vhost-net 2>&1
    step "install Incus"; install_incus
    step "install Ansible"; install_ansible || { echo "Ansible install failed"; exit 1; }
    step "image"; build_image
    step "make apply (gpu_policy: shared, two containers)"
    write_lab shared gpu-a gpu-b
    make -C "$LAB" --no-print-directory sync >/dev/null && lab_vars
    timeout 300 make -C "$LAB" --no-print-directory apply 2>&1 \
        | grep -E '^(apply|plan|fatal|PLAY RECAP)|changed=|msg:|GPU' 
    incus config show --project "$PROJECT" gpu-a --expanded | grep -E 'nvidia|gpu|LD_LIBRARY|PATH' 
    step "nvidia-smi inside the containers our roles made"; smi gpu-a gpu-b
    step "after incus restart"
    # --force: the tiny image has no init to shut down cleanly (sleep is PID 1).
    timeout 120 incus restart --force --project "$PROJECT" gpu-a gpu-b; smi gpu-a gpu-b
    step "second apply"
    make -C "$LAB" --no-print-directory apply 2>&1 | grep -E '^apply:|changed='
    step "plan (names the GPU and the user-space method)"
    make -C "$LAB" --no-print-directory plan 2>&1 | grep -E '^plan:'
    step "gpu_policy: exclusive with an undeclared container holding the GPU"
    incus init "$IMAGE" outsider -c raw.lxc="lxc.init.cmd = /usr/bin/sleep infinity" \
        -d root,size=1GiB >/dev/null 2>&1 || incus init "$IMAGE" outsider \
        -c raw.lxc="lxc.init.cmd = /usr/bin/sleep infinity" >/dev/null
    incus config device add outsider usr disk source=/usr path=/usr readonly=true >/dev/null
    incus config device add outsider gpu0 gpu gputype=physical >/dev/null
    incus start outsider
    write_lab exclusive gpu-a
    make -C "$LAB" --no-print-directory plan 2>&1 | grep -E -A2 '\[WARNING\]: instance|^plan:'
    step "done"
}

case "${1:-}" in
    --prepare) prepare ;;
    *) if [ -n "${OUT:-}" ]; then run_check 2>&1 | tee "$OUT/gpu-check.log"; else run_check; fi ;;
esac
