#!/usr/bin/env python3
"""`make bench` scaling table (issue 19): how apply, plan, snapshot and restore grow with
the number of instances, and the plain `incus` commands doing the cold work side by side.

Each size gets a throw-away tree of its own (owner b19bench, domains b19d<i> with
machines b19d<i>-m<j>, bridges net-b19d<i>, 10.191.<i>.0/24, nft table anklumeb19),
removed before and after. Per size: cold `make apply` (infra + provision, no roles
declared), no-op `make apply` and `make apply TAGS=infra`, `make plan`, `make snapshot`,
`make restore`, `make destroy FORCE=1`; then the plain commands (bridge, project,
default profile, every `incus launch` at once, wait for every address).

Usage: scripts/bench_scale.py [SIZE ...]   (default: 4 12 50; BENCH_SCALE_SIZES too;
PARALLEL=n is passed on to make). Snapshots are full copies on a dir pool: a size whose
instances and snapshots would not fit the free disk gets "n/a" for snapshot and restore.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

REPO = Path(__file__).resolve().parent.parent
PREFIX, OWNER, BASE, NFT = "b19d", "b19bench", "10.191", "anklumeb19"
LINKS = ("site.yml", "snapshot.yml", "ansible.cfg", "roles", "plugins", "collections", "scripts",
         "Makefile", ".venv")
SHAPES = {4: (4, 1), 12: (4, 3), 50: (10, 5), 100: (10, 10)}
COLUMNS = ("cold", "plain", "noop", "noop-infra", "plan", "snapshot", "restore", "destroy")


def log(msg: str) -> None:
    print(f"bench_scale: {msg}", file=sys.stderr, flush=True)


def sh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"bench_scale: {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def query(path: str, method: str = "GET", data: object = None) -> object:
    args = ["incus", "query", "-X", method]
    if data is not None:
        args += ["-d", json.dumps(data)]
    out = sh(*args, path)
    return json.loads(out) if out.strip() else None


def shape(size: int) -> tuple[int, int]:
    if size in SHAPES:
        return SHAPES[size]
    domains = min(10, size)
    return domains, -(-size // domains)


def machines(size: int) -> list[tuple[int, str, str]]:
    domains, per = shape(size)
    out = [(d, f"{PREFIX}{d}-m{m}", f"{BASE}.{d}.{10 + m}")
           for d in range(domains) for m in range(per)]
    return out[:size]


def cleanup() -> None:
    """Remove every b19 object, leftovers of an interrupted run included."""
    for inst in query("/1.0/instances?all-projects=true&recursion=1") or []:  # type: ignore
        project = inst.get("project") or "default"
        if not project.startswith(PREFIX):
            continue
        sh("incus", "config", "unset", "--project", project, inst["name"],
           "security.protection.delete", check=False)
        sh("incus", "delete", "--force", "--project", project, inst["name"], check=False)
    for proj in query("/1.0/projects?recursion=1") or []:  # type: ignore
        if proj["name"].startswith(PREFIX):
            sh("incus", "project", "delete", proj["name"], check=False)
    for net in query("/1.0/networks?recursion=1") or []:  # type: ignore
        if net["name"].startswith(f"net-{PREFIX}"):
            for _ in range(5):
                if not sh("incus", "network", "delete", net["name"], check=False):
                    time.sleep(1)
                else:
                    break
    if shutil.which("nft"):
        sh("nft", "delete", "table", "inet", NFT, check=False)


def write_lab(root: Path, size: int) -> None:
    for name in LINKS:
        if (REPO / name).exists():
            (root / name).symlink_to(REPO / name)
    lines = [f"project_name: {OWNER}", "global:", f'  base_subnet: "{BASE}"',
             "  default_os_image: anklume/debian-12", '  admin_domain: ""', "domains:"]
    current = -1
    for d, name, ip in machines(size):
        if d != current:
            current = d
            lines += [f"  {PREFIX}{d}:", f"    subnet_id: {d}", "    ephemeral: true",
                      "    machines:"]
        lines += [f"      {name}:", "        type: lxc", f'        ip: "{ip}"']
    (root / "infra.yml").write_text("\n".join(lines) + "\n")
    make(root, "sync")
    allvars = root / "group_vars" / "all.yml"
    allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT}\n")


def make(root: Path, *args: str) -> tuple[float, str]:
    """Run `make ARGS` in the lab; its seconds and output. Any failure stops the bench."""
    extra = [f"PARALLEL={os.environ['PARALLEL']}"] if os.environ.get("PARALLEL") else []
    start = time.monotonic()
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args,
                           *extra], cwd=root, capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Operation not found" in out:
        sys.stderr.write(out)
        raise SystemExit(f"bench_scale: make {' '.join(args)} failed (rc {proc.returncode})")
    return took, out


def changed(out: str) -> int:
    return sum(int(n) for n in re.findall(r" : ok=\d+\s+changed=(\d+)", out))


def wait_addresses(size: int) -> None:
    want = {name: ip for _, name, ip in machines(size)}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        seen = 0
        for inst in query("/1.0/instances?all-projects=true&recursion=2") or []:  # type: ignore
            net = ((inst.get("state") or {}).get("network") or {}).get("eth0") or {}
            if want.get(inst["name"]) in {a["address"] for a in net.get("addresses") or []}:
                seen += 1
        if seen == len(want):
            return
        time.sleep(0.25)
    raise SystemExit("bench_scale: plain: instances without their address after 600 s")


def plain(size: int) -> float:
    """The cold work with plain incus commands, every launch at once."""
    start = time.monotonic()
    domains = sorted({d for d, _, _ in machines(size)})
    for d in domains:
        sh("incus", "network", "create", f"net-{PREFIX}{d}", f"ipv4.address={BASE}.{d}.254/24",
           "ipv4.nat=true", "ipv6.address=none",
           f"ipv4.dhcp.ranges={BASE}.{d}.100-{BASE}.{d}.199")
        sh("incus", "project", "create", f"{PREFIX}{d}", "-c", "features.images=false",
           "-c", "features.profiles=true")
        sh("incus", "profile", "device", "add", "--project", f"{PREFIX}{d}", "default", "root",
           "disk", "path=/", "pool=default")
        sh("incus", "profile", "device", "add", "--project", f"{PREFIX}{d}", "default", "eth0",
           "nic", f"network=net-{PREFIX}{d}", "name=eth0")
    procs = [subprocess.Popen(["incus", "launch", "anklume/debian-12", name, "--project",
                               f"{PREFIX}{d}", "-d", f"eth0,ipv4.address={ip}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for d, name, ip in machines(size)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"bench_scale: plain incus launch failed: {err.strip()}")
    wait_addresses(size)
    return time.monotonic() - start


def instance_bytes() -> int:
    """Disk one instance of ours takes on the pool (its rootfs), for the snapshot check."""
    pool = Path("/var/lib/incus/storage-pools/default/containers")
    for path in sorted(pool.glob(f"{PREFIX}*")):
        return int(sh("du", "-sb", str(path)).split()[0])
    return 0


def bench(size: int, work: Path) -> dict[str, str]:
    row: dict[str, str] = {}
    cleanup()
    root = work / f"n{size}"
    root.mkdir()
    write_lab(root, size)
    log(f"{size} instances: cold make apply")
    took, out = make(root, "apply")
    row["cold"] = f"{took:.1f}"
    for label, args in (("noop", ("apply",)), ("noop-infra", ("apply", "TAGS=infra")),
                        ("plan", ("plan",))):
        log(f"{size} instances: make {' '.join(args)}")
        took, out = make(root, *args)
        row[label] = f"{took:.1f}" + ("" if changed(out) == 0 else "!")
    need = instance_bytes() * size
    if need and shutil.disk_usage("/var/lib/incus").free < need * 1.2:
        log(f"{size} instances: snapshot and restore skipped (a dir pool copies "
            f"{need / 2**30:.0f} GiB per snapshot, more than the free disk)")
        row["snapshot"] = row["restore"] = "n/a"
    else:
        for label, target in (("snapshot", "snapshot"), ("restore", "restore")):
            log(f"{size} instances: make {target} NAME=b19")
            took, out = make(root, target, "NAME=b19")
            row[label] = f"{took:.1f}"
    log(f"{size} instances: make destroy FORCE=1")
    took, out = make(root, "destroy", "FORCE=1")
    row["destroy"] = f"{took:.1f}"
    cleanup()
    log(f"{size} instances: plain incus commands")
    row["plain"] = f"{plain(size):.1f}"
    cleanup()
    return row


def per_instance(rows: dict[int, dict[str, str]], a: int, b: int) -> dict[str, str]:
    out = {}
    for col in COLUMNS:
        try:
            va, vb = float(rows[a][col].rstrip("!")), float(rows[b][col].rstrip("!"))
        except ValueError:
            out[col] = "n/a"
            continue
        out[col] = f"{(vb - va) / (b - a):.2f}"
    return out


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1:] or os.environ.get("BENCH_SCALE_SIZES",
                                                             "4 12 50").split())]
    work = Path(tempfile.mkdtemp(prefix="anklume-bench-scale."))
    rows: dict[int, dict[str, str]] = {}
    try:
        for size in sizes:
            rows[size] = bench(size, work)
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        f"bench_scale: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {os.cpu_count()} "
        f"cores, {sh('incus', '--version').strip()}, load {' '.join(load)}, "
        f"parallel {os.environ.get('PARALLEL') or 'default'}",
        "seconds; cold = make apply on nothing, plain = the same with plain incus commands "
        "(every launch at once); noop = make apply again, noop-infra = TAGS=infra; "
        "! = the no-op run changed something",
        "{:<12}".format("instances") + "".join(f"{c:>11}" for c in COLUMNS),
    ]
    for size in sizes:
        lines.append(f"{size:<12}" + "".join(f"{rows[size][c]:>11}" for c in COLUMNS))
    for a, b in itertools.pairwise(sizes):
        label = f"/inst {a}-{b}"
        lines.append(f"{label:<12}" + "".join(f"{v:>11}"
                                              for v in per_instance(rows, a, b).values()))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out_dir = REPO / ".bench"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "scale.txt").write_text(text)
    log(f"report written to {out_dir / 'scale.txt'}")


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
