#!/usr/bin/env python3
"""`make bench` part: round trip between two domains through sys-firewall (firewall_mode vm)
and through the host (firewall_mode host), side by side in one run (ADR-066).

A throw-away lab (project t12bench, domains t12badm and t12bpro on 10.153.x, host table
inet anklumet12b) is applied in vm mode with sys-firewall as type lxc; BENCH_FW_PINGS pings
(default 300, 10 ms apart) from the admin container to the pro container give the firewall
path. The same lab is then applied in host mode (the firewall pruned, the clients restarted
for their new DHCP routes) and measured again. Prints the median and 90th percentile of each
path and the median added by the firewall. Everything is deleted at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

REPO = Path(__file__).resolve().parent.parent
PREFIX, BASE, TABLE = "t12b", "10.153", "anklumet12b"
ADM, PRO = f"{PREFIX}adm", f"{PREFIX}pro"
A, R = f"{ADM}-a", f"{PRO}-a"
IPS = {A: f"{BASE}.0.10", R: f"{BASE}.1.10"}
PINGS = int(os.environ.get("BENCH_FW_PINGS", "300"))


def infra(mode: str) -> dict:
    admin: dict = {A: {"ip": IPS[A]}}
    if mode == "vm":
        admin["sys-firewall"] = {"type": "lxc"}
    return {"project_name": "t12bench",
            "global": {"base_subnet": BASE, "firewall_mode": mode, "admin_domain": ADM},
            "domains": {ADM: {"subnet_id": 0, "ephemeral": True, "machines": admin},
                        PRO: {"subnet_id": 1, "ephemeral": True,
                              "machines": {R: {"ip": IPS[R]}}}}}


def make(root: Path, *args: str) -> None:
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                          cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench firewall: make {' '.join(args)} failed:\n{proc.stdout[-3000:]}"
                 f"{proc.stderr[-2000:]}")


def write(root: Path, mode: str) -> None:
    (root / "infra.yml").write_text(yaml.safe_dump(infra(mode), sort_keys=False))
    make(root, "sync")
    allvars = root / "group_vars" / "all.yml"
    text = allvars.read_text()
    if "incus_nftables_table" not in text:
        allvars.write_text(text + f"incus_nftables_table: {TABLE}\n"
                           f"incus_nftables_file: {root}/{TABLE}.nft\n"
                           f"incus_firewall_log: {root}/watchdog.log\n")


def incus(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["incus", *args], capture_output=True, text=True, check=check)


def rtts() -> list[float]:
    """Round trips in ms of PINGS pings from the admin container to the pro one."""
    proc = incus("exec", "--project", ADM, A, "--", "ping", "-4", "-n", "-c", str(PINGS),
                 "-i", "0.01", "-W", "1", IPS[R], check=False)
    times = [float(t) for t in re.findall(r"time=([0-9.]+) ms", proc.stdout)]
    if len(times) < PINGS * 0.9:
        sys.exit(f"bench firewall: only {len(times)}/{PINGS} replies:\n{proc.stdout[-500:]}")
    return times


def renew() -> None:
    for name, project in ((A, ADM), (R, PRO)):
        incus("restart", "--force", "--project", project, name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if incus("exec", "--project", ADM, A, "--", "ping", "-c", "1", "-W", "1", IPS[R],
                 check=False).returncode == 0:
            return
        time.sleep(1)
    sys.exit("bench firewall: no route between the domains after the switch")


def cleanup(root: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts/firewall_watchdog.py"), "stop",
                    f"--project={ADM}", "--instance=sys-firewall"], capture_output=True,
                   check=False)
    for project, name in ((ADM, "sys-firewall"), (ADM, A), (PRO, R)):
        incus("delete", "--force", "--project", project, name, check=False)
    for project in (ADM, PRO):
        incus("project", "delete", project, check=False)
    for net in (ADM, PRO):
        incus("network", "delete", f"net-{net}", check=False)
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def row(name: str, times: list[float]) -> str:
    p90 = statistics.quantiles(times, n=10)[-1]
    return f"  {name:<27} {len(times):>5} {statistics.median(times):>10.3f} {p90:>10.3f}"


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="t12bench-"))
    for name in ("site.yml", "ansible.cfg", "roles", "plugins", "collections", "scripts",
                 "Makefile", ".venv"):
        (root / name).symlink_to(REPO / name)
    cleanup_root = root
    try:
        started = time.monotonic()
        write(root, "vm")
        make(root, "apply")
        print(f"  lab applied in vm mode (sys-firewall as lxc, provisioned) in "
              f"{time.monotonic() - started:.0f}s")
        fw = rtts()
        write(root, "host")
        make(root, "apply", "PRUNE=1")
        renew()
        host = rtts()
        print(f"  {'path':<27} {'pings':>5} {'median ms':>10} {'p90 ms':>10}")
        print(row("host (firewall_mode host)", host))
        print(row("sys-firewall (vm mode)", fw))
        added = statistics.median(fw) - statistics.median(host)
        print(f"  added by the firewall path: {added:.3f} ms median round trip "
              f"(goal: under 1 ms) {'ok' if added < 1 else 'OVER'}")
    finally:
        cleanup(cleanup_root)
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
