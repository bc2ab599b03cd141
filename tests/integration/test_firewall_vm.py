"""firewall_mode vm with real packets (roadmap Phase 11, ADR-066), on the real daemon.

A lab tree of its own (anklume project ``t12fw``, domains t12adm, t12per, t12pro on
10.152.x.0/24, host table ``inet anklumet12``) declares sys-firewall as ``type: lxc`` (this
host runs no VM) and one container per domain, plus a policy that opens tcp/8080 of
t12pro-a to t12per. `make apply` builds it all and provisions the firewall. Then, with
bounded pings and nc between the lab's own containers:

- the Phase 8 matrix holds (blocked pairs both ways, admin to all, the declared port open
  and no other), and the allowed packets go through the firewall (its interface counters,
  the route the sender takes), none through the host (whose lab table drops every
  bridge-to-bridge forward);
- a disposable of t12per (`make disp`) gets the same route and the same matrix;
- dropped flows are counted inside the firewall by domain pair;
- a second apply changes nothing;
- with the firewall stopped, inter-domain traffic fails, also through a route forced via
  the host; the watchdog starts it again and traffic returns;
- switching back to firewall_mode host restores the host path and the Phase 8 matrix.

Tests run in file order, each from the state the previous one left.

Own lab: it needs firewall_mode vm (sys-firewall routing between t12adm, t12per and t12pro, its
watchdog running); its tests stop the firewall and finally switch the lab to firewall_mode host
with PRUNE=1, which a lab in host mode neither provides nor would survive.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, recap
from tests.integration.reconcile_lab import cleanup

pytestmark = pytest.mark.incus

PREFIX = "t12"
BASE = "10.152"
OWNER = "t12fw"
ADM, PER, PRO = f"{PREFIX}adm", f"{PREFIX}per", f"{PREFIX}pro"
FW = "sys-firewall"
TABLE = "anklumet12"
BOXES = {f"{ADM}-a": (ADM, f"{BASE}.0.10"), f"{PER}-a": (PER, f"{BASE}.1.10"),
         f"{PRO}-a": (PRO, f"{BASE}.2.10")}
PROJECT = {name: dom for name, (dom, _ip) in BOXES.items()}
IP = {name: ip for name, (_dom, ip) in BOXES.items()}
A, P, R = f"{ADM}-a", f"{PER}-a", f"{PRO}-a"


def infra(mode: str) -> dict[str, Any]:
    admin: dict[str, Any] = {A: {"ip": IP[A]}}
    if mode == "vm":
        admin[FW] = {"type": "lxc"}
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "firewall_mode": mode, "admin_domain": ADM},
        "domains": {
            ADM: {"subnet_id": 0, "ephemeral": True, "machines": admin},
            PER: {"subnet_id": 1, "ephemeral": True, "machines": {P: {"ip": IP[P]}},
                  "disposables": True},
            PRO: {"subnet_id": 2, "ephemeral": True, "machines": {R: {"ip": IP[R]}}},
        },
        "network_policies": [{"description": "per to pro web", "from": PER, "to": R,
                              "protocol": "tcp", "ports": [8080]}],
    }


def incus(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["incus", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def in_box(name: str, *cmd: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return incus("exec", "--project", PROJECT.get(name, ADM), name, "--", *cmd, check=check)


def ping(src: str, dst_ip: str) -> bool:
    return in_box(src, "ping", "-4", "-c", "1", "-W", "1", dst_ip).returncode == 0


def tcp(src: str, dst_ip: str, port: int) -> bool:
    return in_box(src, "nc", "-z", "-w", "1", dst_ip, str(port)).returncode == 0


def listen(name: str, *ports: int) -> None:
    """Keep TCP listeners on ``ports`` in ``name`` (restarted listeners replace older ones)."""
    for port in ports:
        in_box(name, "sh", "-c", f"pkill -f '^nc -lk {port}$' ; "
               f"setsid nohup nc -lk {port} >/dev/null 2>&1 < /dev/null &")
    time.sleep(0.5)


def fw_counter(iface: str) -> int:
    out = in_box(FW, "cat", f"/sys/class/net/{iface}/statistics/tx_packets", check=True)
    return int(out.stdout)


def eventually(probe: Any, timeout: float, *args: Any) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(*args):
            return True
        time.sleep(1)
    return False


def renew(*names: str) -> None:
    """A client takes the bridge's new DHCP routes at its next lease: restart it now."""
    for name in names:
        incus("restart", "--force", "--project", PROJECT[name], name, timeout=120)
    for name in names:
        assert eventually(lambda n=name: in_box(n, "ip", "-4", "addr", "show", "eth0")
                          .stdout.count(IP[n]) > 0, 60), name


def watchdog(lab: Path, action: str) -> str:
    proc = subprocess.run([str(lab / ".venv/bin/python"),
                           str(lab / "scripts/firewall_watchdog.py"),
                           action, f"--project={ADM}", f"--instance={FW}"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def matrix() -> dict[str, bool]:
    return {
        "adm>per": ping(A, IP[P]), "adm>pro": ping(A, IP[R]),
        "per>pro": ping(P, IP[R]), "pro>per": ping(R, IP[P]),
        "per>adm": ping(P, IP[A]), "pro>adm": ping(R, IP[A]),
        "adm>pro:8081": tcp(A, IP[R], 8081),  # the listener is there
        "per>pro:8080": tcp(P, IP[R], 8080), "per>pro:8081": tcp(P, IP[R], 8081),
        "pro>per:8080": tcp(R, IP[P], 8080),
    }


PHASE8 = {"adm>per": True, "adm>pro": True, "per>pro": False, "pro>per": False,
          "per>adm": False, "pro>adm": False, "adm>pro:8081": True,
          "per>pro:8080": True, "per>pro:8081": False,
          "pro>per:8080": False}


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)

    def write(self, mode: str) -> str:
        (self.root / "infra.yml").write_text(yaml.safe_dump(infra(mode), sort_keys=False))
        rc, out = lab_make(self.root, "sync")
        assert rc == 0, out
        allvars = self.root / "group_vars" / "all.yml"
        text = allvars.read_text()
        if "incus_nftables_table" not in text:
            allvars.write_text(text + f"incus_nftables_table: {TABLE}\n"
                               f"incus_nftables_file: {self.root}/{TABLE}.nft\n"
                               f"incus_firewall_log: {self.root}/watchdog.log\n"
                               "incus_firewall_interval: 1\nincus_firewall_grace: 10\n")
        return out

    def apply(self, *args: str) -> str:
        rc, out = lab_make(self.root, "apply", *args, timeout=900)
        assert rc == 0, out
        return out


def drop_table() -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("t12fw"))
    subprocess.run([str(lab.root / ".venv/bin/python"),
                    str(lab.root / "scripts/firewall_watchdog.py"), "stop",
                    f"--project={ADM}", f"--instance={FW}"], capture_output=True, check=False)
    cleanup(PREFIX, TABLE)
    drop_table()
    yield lab
    watchdog(lab.root, "stop")
    cleanup(PREFIX, TABLE)
    drop_table()


def test_apply_builds_the_firewall_and_routes_through_it(lab: Lab) -> None:
    out = lab.write("vm")
    assert "sys-firewall is type lxc: its kernel is the host's" in out
    lab.apply()
    for name in BOXES:
        listen(name, 8080, 8081)
    addrs = in_box(FW, "ip", "-4", "-o", "addr", check=True).stdout
    for sub in ("0", "1", "2"):
        assert f"{BASE}.{sub}.253/24" in addrs
    route = in_box(P, "ip", "-4", "route", "get", IP[R], check=True).stdout
    assert f"via {BASE}.1.253" in route, route
    # The host's lab table lets no bridge reach another: no admin rule, no policy.
    rules = (lab.root / f"{TABLE}.nft").read_text()
    assert "sys-firewall is the only path between domains" in rules
    assert "reaches every domain" not in rules and "per to pro web" not in rules
    assert subprocess.run(["nft", "list", "table", "inet", TABLE], capture_output=True,
                          check=False).returncode == 0
    assert watchdog(lab.root, "status").startswith("running")


def test_the_phase8_matrix_holds_through_the_firewall(lab: Lab) -> None:
    assert matrix() == PHASE8


def test_a_disposable_of_a_domain_gets_the_same_path_and_matrix(lab: Lab) -> None:
    """make disp in t12per (ADR-084): its DHCP lease brings the route through the firewall,
    the policy's port is open to it and nothing else, as for the domain's machine."""
    probe = (f"ip -4 route get {IP[R]}; nc -z -w 1 {IP[R]} 8080 && echo pro-8080-open; "
             f"nc -z -w 1 {IP[R]} 8081 || echo pro-8081-closed; "
             f"ping -4 -c 1 -W 1 {IP[A]} >/dev/null || echo adm-closed")
    proc = subprocess.run([str(lab.root / ".venv/bin/python"), "scripts/ops.py", "disp"],
                          cwd=lab.root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DOMAIN": PER, "CMD": probe}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"via {BASE}.1.253" in proc.stdout, proc.stdout
    assert {"pro-8080-open", "pro-8081-closed", "adm-closed"} <= set(proc.stdout.split())


def test_allowed_packets_traverse_the_firewall_not_the_host(lab: Lab) -> None:
    before = fw_counter(f"net-{PRO}")
    proc = in_box(A, "ping", "-4", "-c", "20", "-i", "0.05", "-W", "1", IP[R])
    assert proc.returncode == 0, proc.stdout
    assert fw_counter(f"net-{PRO}") - before >= 20
    # Forced through the host (its gateway on the sender's bridge): dropped there.
    in_box(P, "ip", "route", "replace", f"{IP[R]}/32", "via", f"{BASE}.1.254", check=True)
    try:
        assert not ping(P, IP[R]) and not tcp(P, IP[R], 8080)
    finally:
        in_box(P, "ip", "route", "del", f"{IP[R]}/32", check=True)
    assert tcp(P, IP[R], 8080)


def test_dropped_flows_are_counted_by_domain_pair(lab: Lab) -> None:
    assert not ping(R, IP[P])
    drops = in_box(FW, "nft", "list", "set", "inet", "anklume", "drops", check=True).stdout
    assert f'"net-{PRO}" . "net-{PER}" counter packets' in drops, drops


def test_a_second_apply_changes_nothing(lab: Lab) -> None:
    out = lab.apply()
    assert set(recap(out).values()) == {0}, out


def test_a_plan_has_nothing_to_do(lab: Lab) -> None:
    rc, out = lab_make(lab.root, "plan")
    assert rc == 0, out
    assert "plan: 0 to create, 0 to change, 0 to remove, 0 orphans" in out, out


def test_stopped_firewall_fails_closed_then_is_restarted(lab: Lab) -> None:
    assert watchdog(lab.root, "stop") == "stopped"
    incus("stop", "--force", "--project", ADM, FW, timeout=120)
    try:
        assert not any([ping(A, IP[R]), ping(A, IP[P]), tcp(P, IP[R], 8080)])
        in_box(A, "ip", "route", "replace", f"{IP[R]}/32", "via", f"{BASE}.0.254", check=True)
        try:
            assert not ping(A, IP[R])  # no fallback through the host
        finally:
            in_box(A, "ip", "route", "del", f"{IP[R]}/32", check=True)
    finally:
        lab.apply("TAGS=firewall")  # the watchdog again
    started = time.monotonic()
    assert eventually(ping, 90, A, IP[R]), "traffic did not come back"
    print(f"firewall back after {time.monotonic() - started:.1f}s")
    assert "Stopped: start ok" in (lab.root / "watchdog.log").read_text()
    incus("stop", "--force", "--project", ADM, FW, timeout=120)
    assert eventually(ping, 90, A, IP[R]), "the watchdog did not restart the firewall"
    listen(R, 8080, 8081)
    assert matrix() == PHASE8


def test_switching_back_to_host_mode_restores_phase8(lab: Lab) -> None:
    lab.write("host")
    lab.apply("PRUNE=1")
    assert incus("info", "--project", ADM, FW, check=False).returncode != 0
    assert watchdog(lab.root, "status") == "not running"
    renew(*BOXES)
    for name in BOXES:
        listen(name, 8080, 8081)
    route = in_box(P, "ip", "-4", "route", "get", IP[R], check=True).stdout
    assert f"via {BASE}.1.254" in route, route
    assert matrix() == PHASE8
