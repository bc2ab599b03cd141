"""A small lab for the isolation tests: one bridge and container per domain.

Everything is named ``t6`` (bridges ``net-t6*``, containers ``t6-*``, subnets
10.130.x.0/24 and fd00:130:x::/64, nftables table ``inet anklume_t6``) so the
lab never touches what other tests or the real ``inet anklume`` table own.
Traffic is bounded (``ping -c 1 -W 1``, ``nc -w 1``) and only ever aimed at
the lab's own containers and bridge gateways.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.incus_helpers import create_network

ROOT = Path(__file__).resolve().parents[2]
TABLE = "anklume_t6"
PREFIX = "t6-"
NET_PREFIX = "net-t6"
ADMIN = "t6adm"


@dataclass(frozen=True)
class Box:
    """One lab container."""

    name: str
    domain: str
    ip: str
    subnet_id: int

    @property
    def network(self) -> str:
        return f"net-{self.domain}"

    @property
    def ip6_prefix(self) -> str:
        return f"fd00:130:{self.subnet_id}:"


DOMAINS = {"t6adm": 1, "t6per": 2, "t6pro": 3, "t6lab": 4}
# A bridge outside every domain: stands for "the outside" (the uplink that NAT
# uses), which isolation must leave reachable.
OUTSIDE = ("net-t6out", 9)
BOXES = [
    Box("t6-adm", "t6adm", "10.130.1.10", 1),
    Box("t6-per", "t6per", "10.130.2.10", 2),
    Box("t6-pro", "t6pro", "10.130.3.10", 3),
    Box("t6-lab", "t6lab", "10.130.4.10", 4),
    Box("t6-lab2", "t6lab", "10.130.4.11", 4),
]
OUT_BOX = Box("t6-out", "t6out", "10.130.9.10", 9)
BY_NAME = {b.name: b for b in [*BOXES, OUT_BOX]}
POLICY_PORT = 11434
CLOSED_PORT = 11435
# Ports of the test's listener on the host (all addresses, IPv4 and IPv6): one closed to
# every domain, one a `to: host` policy opens for t6per.
HOST_PORT = 47130
HOST_POLICY_PORT = 47131


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def sh(script: str, timeout: float = 180) -> None:
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"lab setup failed:\n{script}\n{proc.stdout}\n{proc.stderr}"


def bridge_args(name: str, subnet_id: int) -> list[str]:
    return [
        name,
        f"ipv4.address=10.130.{subnet_id}.254/24",
        "ipv4.nat=true",
        f"ipv6.address=fd00:130:{subnet_id}::1/64",
        "ipv6.nat=true",
    ]


def cleanup() -> None:
    """Remove the lab, including leftovers of an interrupted earlier run."""
    listing = run("incus", "list", "--format", "csv", "--columns", "n", check=False).stdout
    names = [n for n in listing.split() if n.startswith(PREFIX)]
    if names:
        run("incus", "delete", "--force", *names, check=False)
    nets = run("incus", "network", "list", "--format", "csv", "--columns", "n", check=False).stdout
    for net in nets.split():
        if net.startswith(NET_PREFIX):
            run("incus", "network", "delete", net, check=False)
    run("nft", "delete", "table", "inet", TABLE, check=False)


def create_bridge(name: str, subnet_id: int) -> None:
    create_network(*bridge_args(name, subnet_id))


def build(image: str) -> None:
    """Bridges, then every container in parallel, then wait for addresses."""
    for domain, sid in DOMAINS.items():
        create_bridge(f"net-{domain}", sid)
    create_bridge(*OUTSIDE)
    launches = []
    for box in [*BOXES, OUT_BOX]:
        net = OUTSIDE[0] if box is OUT_BOX else box.network
        launches.append(
            f"( incus init -q {image} {box.name} --network {net}"
            f" && incus config device set {box.name} eth0 ipv4.address={box.ip}"
            f" && incus start {box.name} ) &"
        )
    sh("set -e\n" + "\n".join(launches) + "\nfor j in $(jobs -p); do wait $j; done")
    wait_addresses()
    # Listeners: the policy port and a second one that must stay closed.
    for name in ("t6-lab", "t6-lab2"):
        for port in (POLICY_PORT, CLOSED_PORT):
            run(
                "incus",
                "exec",
                name,
                "--",
                "sh",
                "-c",
                f"nohup nc -lk {port} >/dev/null 2>&1 </dev/null &",
            )


def addresses() -> dict[str, tuple[str, str]]:
    """Container name -> (IPv4, global IPv6) as Incus sees them now."""
    data = json.loads(run("incus", "list", PREFIX, "--format", "json").stdout)
    found: dict[str, tuple[str, str]] = {}
    for inst in data:
        eth0 = ((inst.get("state") or {}).get("network") or {}).get("eth0") or {}
        v4 = v6 = ""
        for addr in eth0.get("addresses", []):
            if addr["family"] == "inet":
                v4 = addr["address"]
            elif addr["family"] == "inet6" and addr["address"].startswith("fd00:130:"):
                v6 = addr["address"]
        found[inst["name"]] = (v4, v6)
    return found


def tentative(name: str) -> bool:
    """An IPv6 address still in duplicate address detection does not answer yet."""
    out = run(
        "incus",
        "exec",
        name,
        "--",
        "ip",
        "-6",
        "addr",
        "show",
        "dev",
        "eth0",
        "tentative",
        check=False,
    ).stdout
    return out.strip() != ""


def wait_addresses(names: Iterable[str] | None = None, timeout: float = 120) -> dict[str, str]:
    """Wait until each container has its IPv4 and a settled ULA IPv6; return name -> IPv6.

    On a busy 2-core host a first DHCP exchange is sometimes lost; a container
    still without its address after a while is asked to renew its lease.
    """
    wanted = list(names) if names is not None else list(BY_NAME)
    start = time.monotonic()
    renewed = start
    while True:
        found = addresses()
        ready = {
            n: found[n][1]
            for n in wanted
            if n in found and found[n][0] == BY_NAME[n].ip and found[n][1]
        }
        if len(ready) == len(wanted) and not any(map(tentative, wanted)):
            return ready
        now = time.monotonic()
        assert now - start < timeout, f"containers without addresses: {found}"
        if now - renewed > 15:
            renewed = now
            for name in set(wanted) - set(ready):
                run("incus", "exec", name, "--", "networkctl", "renew", "eth0", check=False)
        time.sleep(1)


def ping(src: str, dst: str) -> bool:
    """One bounded ping (IPv4 or IPv6 by the address) from a lab container."""
    flag = "-6" if ":" in dst else "-4"
    proc = run("incus", "exec", src, "--", "ping", flag, "-c", "1", "-W", "1", dst, check=False)
    return proc.returncode == 0


def tcp(src: str, dst: str, port: int) -> bool:
    """One bounded TCP connection attempt from a lab container."""
    proc = run("incus", "exec", src, "--", "nc", "-z", "-w", "1", dst, str(port), check=False)
    return proc.returncode == 0


def connects(src: str, dst: str, port: int) -> bool:
    """One bounded TCP connection attempt with Python (takes fe80::x%eth0 addresses)."""
    script = f"import socket; socket.create_connection(({dst!r}, {port}), 1).close()"
    proc = run("incus", "exec", src, "--", "python3", "-c", script, check=False)
    return proc.returncode == 0


def parallel(probes: dict[str, tuple]) -> dict[str, bool]:  # type: ignore[type-arg]
    """Run many probes at once: key -> (function, *args)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {k: pool.submit(fn, *args) for k, (fn, *args) in probes.items()}
        return {k: f.result() for k, f in futures.items()}


def lab_vars(**overrides: object) -> dict[str, object]:
    """Variables as `make sync` writes them (docs/generated-vars.md), for the lab."""
    domains = {
        d: {
            "description": f"test domain {d}",
            "subnet_id": sid,
            "project": "default",
            "network": f"net-{d}",
            "subnet": f"10.130.{sid}.0/24",
            "gateway": f"10.130.{sid}.254",
            "ephemeral": True,
            "profiles": {},
            "machines": [b.name for b in BOXES if b.domain == d],
        }
        for d, sid in DOMAINS.items()
    }
    variables: dict[str, object] = {
        "anklume_isolation": True,
        "anklume_admin_domain": ADMIN,
        "anklume_domains": domains,
        "anklume_network_policies": [
            {
                "from": "t6per",
                "from_kind": "domain",
                "from_cidr": "10.130.2.0/24",
                "to": "t6-lab",
                "to_kind": "machine",
                "to_cidr": "10.130.4.10/32",
                "protocol": "tcp",
                "ports": [POLICY_PORT],
                "description": "perso to the homelab LLM",
            },
            {
                "from": "t6per",
                "from_kind": "domain",
                "from_cidr": "10.130.2.0/24",
                "to": "host",
                "to_kind": "host",
                "to_cidr": "",
                "protocol": "tcp",
                "ports": [HOST_POLICY_PORT],
                "description": "perso to a host service",
            },
        ],
        "incus_nftables_table": TABLE,
    }
    variables.update(overrides)
    return variables


@dataclass
class Applied:
    rc: int
    output: str

    @property
    def changed(self) -> int:
        match = re.search(r"localhost\s*:.*?changed=(\d+)", self.output)
        assert match, self.output
        return int(match.group(1))


def apply_role(tmp: Path, *extra: str, **overrides: object) -> Applied:
    """Run nftables.yml (the role) on localhost with the lab's variables."""
    overrides.setdefault("incus_nftables_file", str(tmp / f"{TABLE}.nft"))
    variables = lab_vars(**overrides)
    vars_file = tmp / "vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    inventory = tmp / "hosts.ini"
    inventory.write_text("localhost ansible_connection=local\n")
    # A copy of the play: run beside ROOT's, Ansible would add the checkout's own
    # group_vars/ (the user's infra) to the lab's variables.
    playbook = tmp / "nftables.yml"
    shutil.copyfile(ROOT / "nftables.yml", playbook)
    proc = subprocess.run(
        [
            str(ROOT / ".venv/bin/ansible-playbook"),
            "-i",
            str(inventory),
            str(playbook),
            "-e",
            f"@{vars_file}",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    return Applied(proc.returncode, proc.stdout + proc.stderr)


def live_table() -> str:
    """The lab table as the kernel holds it ("" when absent)."""
    return run("nft", "-s", "list", "table", "inet", TABLE, check=False).stdout


def incusd_processes() -> dict[int, str]:
    """pid -> role ("daemon", or the helper's subcommand such as forkproxy).

    The helpers are also named incusd: killing them with the daemon would
    break the proxy devices of every other instance on this machine."""
    out = subprocess.run(["pgrep", "-x", "incusd"], capture_output=True, text=True, check=False)
    found = {}
    for pid in out.stdout.split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        helper = len(argv) > 1 and argv[1].startswith(b"fork")
        found[int(pid)] = argv[1].decode() if helper else "daemon"
    return found


def incusd_pids() -> list[int]:
    return [pid for pid, role in incusd_processes().items() if role == "daemon"]


def systemd_manages_incusd() -> bool:
    """systemd is the init here (inside the runner): it runs incusd as the unit `incus`,
    and boot units are loaded. The host of these tests has no systemd."""
    return Path("/run/systemd/system").exists()


def unit_main_pid() -> int:
    """The pid of the unit `incus` (0 when it is not running)."""
    out = run("systemctl", "show", "--property", "MainPID", "--value", "incus.service").stdout
    return int(out.strip() or 0)


def restart_incusd() -> None:
    """Restart the daemon, never its fork* helpers, and wait until it answers again.

    Under systemd (inside the runner): `systemctl restart incus`, the unit's main process
    before and after compared (its KillMode=process stops only the daemon; pgrep would also
    list the containers' `[lxc monitor]` processes, which keep running). Elsewhere:
    SIGTERM, then scripts/host.sh starts it again."""
    if systemd_manages_incusd():
        before = unit_main_pid()
        assert before, "no incusd process to restart"
        restart = run("systemctl", "restart", "incus.service", check=False, timeout=180)
        assert restart.returncode == 0, restart.stdout + restart.stderr
        ready = run("incus", "admin", "waitready", "--timeout", "60", check=False, timeout=90)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        info = run("incus", "info", check=False, timeout=60)
        assert info.returncode == 0, info.stdout + info.stderr
        after = unit_main_pid()
        assert after and after != before, f"incusd not restarted (pid {before}, now {after})"
        return
    pids = incusd_pids()
    assert pids, "no incusd process to restart"
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while incusd_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    host = subprocess.run(
        ["bash", str(ROOT / "scripts/host.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert host.returncode == 0, host.stdout + host.stderr
