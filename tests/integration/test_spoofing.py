"""Anti-spoofing on every eth0 anklume creates, through the real generator and roles.

A lab tree (owner ``t15spoof``, domains ``t15a`` and ``t15b``, 10.115.x.0/24, nft table
``inet anklumet15``) is synced and applied with ``make apply TAGS=infra``. In ``t15a``:
``t15-cli`` (the source of a machine-level policy to ``t15-srv`` in ``t15b``), ``t15-evil``
(the attacker), ``t15-dhcp`` (no static address) and ``t15-gw`` (``allow_spoofing: true``,
the control: a routing machine whose forged packets do get through). Every packet is bounded
and aimed only at the lab's own containers and bridge gateways.

Own lab: it needs a machine with allow_spoofing, one without a static address and a
machine-level policy; its tests change a container's address and MAC from inside, turn a NIC
filter off by hand and restart incusd, which no other module's lab would survive.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, recap
from tests.integration.isolation_lab import restart_incusd
from tests.integration.reconcile_lab import cleanup

pytestmark = pytest.mark.incus

OWNER = "t15spoof"
PREFIX = "t15"
BASE = "10.115"
NFT_TABLE = "anklumet15"
POLICY_PORT = 15115  # UDP, t15-cli -> t15-srv (machine-level policy)
BANNER_PORT = 15116  # TCP, each listener answers with its own name
CLI, EVIL, DHCP, GW, SRV = "t15-cli", "t15-evil", "t15-dhcp", "t15-gw", "t15-srv"
CLI_IP, EVIL_IP, GW_IP, SRV_IP = f"{BASE}.1.11", f"{BASE}.1.12", f"{BASE}.1.13", f"{BASE}.2.10"
GATEWAY = f"{BASE}.1.254"
PROJECT = {CLI: "t15a", EVIL: "t15a", DHCP: "t15a", GW: "t15a", SRV: "t15b"}
RECEIVED = "/tmp/t15-received"

# A UDP receiver that writes "<source address> <payload>" per datagram.
RECEIVER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {POLICY_PORT}))
while True:
    data, (src, _port) = s.recvfrom(64)
    with open("{RECEIVED}", "a") as f:
        f.write(src + " " + data.decode(errors="replace") + "\\n")
"""
# A TCP listener that answers every connection with the container's name.
BANNER = f"""
import socket
s = socket.create_server(("0.0.0.0", {BANNER_PORT}))
while True:
    c, _ = s.accept()
    c.sendall(socket.gethostname().encode())
    c.close()
"""


def infra() -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "admin_domain": ""},
        "domains": {
            "t15a": {
                "description": "spoofing lab",
                "subnet_id": 1,
                "ephemeral": True,
                "machines": {
                    CLI: {"ip": CLI_IP},
                    EVIL: {"ip": EVIL_IP},
                    DHCP: {},
                    GW: {"ip": GW_IP, "allow_spoofing": True},
                },
            },
            "t15b": {
                "description": "policy target",
                "subnet_id": 2,
                "ephemeral": True,
                "machines": {SRV: {"ip": SRV_IP}},
            },
        },
        "network_policies": [
            {
                "description": "t15 machine policy",
                "from": CLI,
                "to": SRV,
                "protocol": "udp",
                "ports": [POLICY_PORT],
            }
        ],
    }


def sh(name: str, script: str, check: bool = True, timeout: float = 30) -> str:
    proc = subprocess.run(
        ["incus", "exec", "--project", PROJECT[name], name, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"{name}: {script}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def background(name: str, program: str) -> None:
    sh(name, f"nohup python3 -c '{program}' >/dev/null 2>&1 </dev/null &")


def ping(name: str, dst: str) -> bool:
    proc = subprocess.run(
        [
            "incus",
            "exec",
            "--project",
            PROJECT[name],
            name,
            "--",
            "ping",
            "-4",
            "-c",
            "1",
            "-W",
            "1",
            dst,
        ],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return proc.returncode == 0


def send_udp(name: str, payload: str, source: str = "") -> None:
    """One datagram to the policy port; ``source`` forges the source address (IP_TRANSPARENT,
    so the container needs no such address: only a filter can tell)."""
    bind = f"s.setsockopt(socket.SOL_IP, 19, 1); s.bind(('{source}', 0)); " if source else ""
    sh(
        name,
        'python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
        f"{bind}s.sendto(b'{payload}', ('{SRV_IP}', {POLICY_PORT}))\"",
    )


def received() -> list[str]:
    """The payloads t15-srv got. Not their source: the bridge's NAT (ipv4.nat) rewrites it to
    the host's address on t15b after our forward chain has matched the original one."""
    return [
        line.split(" ", 1)[1]
        for line in sh(SRV, f"cat {RECEIVED} 2>/dev/null || true").splitlines()
    ]


def received_after(marker: str) -> list[str]:
    """What t15-srv got once a genuine datagram sent last by t15-cli arrived: anything sent
    before it that was going to pass has passed by then."""
    send_udp(CLI, marker)
    for _ in range(25):
        got = received()
        if marker in got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"the genuine datagram {marker!r} never arrived: {received()}")


def banner(client: str, dst: str) -> str:
    return sh(
        client,
        'python3 -c "import socket; c = socket.create_connection('
        f"('{dst}', {BANNER_PORT}), 2); print(c.recv(64).decode())\"",
        check=False,
    ).strip()


def eth0(name: str) -> dict[str, str]:
    out = subprocess.run(
        ["incus", "query", f"/1.0/instances/{name}?project={PROJECT[name]}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out)["expanded_devices"]["eth0"])


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cleanup(PREFIX, NFT_TABLE)
    root = lab_tree(tmp_path_factory.mktemp("spoofing"))
    try:
        (root / "infra.yml").write_text(yaml.safe_dump(infra(), sort_keys=False))
        code, out = lab_make(root, "sync")
        assert code == 0, out
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        code, out = lab_make(root, "apply", "TAGS=infra", timeout=600)
        assert code == 0, out
        for name in (SRV,):
            background(name, RECEIVER)
        for name in (CLI, EVIL):
            background(name, BANNER)
        yield root
    finally:
        cleanup(PREFIX, NFT_TABLE)


def test_every_eth0_carries_the_filters_and_the_router_opts_out(lab: Path) -> None:
    on = {
        "security.mac_filtering": "true",
        "security.ipv4_filtering": "true",
        "security.ipv6_filtering": "true",
    }
    for name in (CLI, EVIL, DHCP, SRV):
        assert on.items() <= eth0(name).items(), name
    assert eth0(CLI)["ipv4.address"] == CLI_IP  # static addresses stay
    assert "ipv4.address" not in eth0(DHCP)  # the profile's eth0: DHCP, pinned by Incus
    gw = eth0(GW)
    assert {k: gw[k] for k in on} == dict.fromkeys(on, "false")


def test_a_second_apply_changes_nothing(lab: Path) -> None:
    code, out = lab_make(lab, "apply", "TAGS=infra", timeout=600)
    assert code == 0, out
    assert recap(out) and set(recap(out).values()) == {0}, out


def pid(name: str) -> int:
    out = subprocess.run(
        ["incus", "query", f"/1.0/instances/{name}/state?project={PROJECT[name]}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(json.loads(out)["pid"])


def test_a_filter_turned_off_by_hand_comes_back_without_a_restart(lab: Path) -> None:
    before = pid(CLI)
    subprocess.run(
        [
            "incus",
            "config",
            "device",
            "set",
            "--project",
            PROJECT[CLI],
            CLI,
            "eth0",
            "security.ipv4_filtering=false",
        ],
        check=True,
    )
    code, out = lab_make(lab, "apply", "TAGS=infra", timeout=600)
    assert code == 0 and sum(recap(out).values()) >= 1, out
    assert eth0(CLI)["security.ipv4_filtering"] == "true"
    assert pid(CLI) == before, "Incus applies NIC filters live: no restart is needed"


def test_filtered_machines_keep_working(lab: Path) -> None:
    """Static and DHCP machines reach their gateway and each other; the machine policy
    carries genuine packets."""
    assert ping(CLI, GATEWAY) and ping(DHCP, GATEWAY) and ping(EVIL, CLI_IP)
    assert "genuine" in received_after("genuine")


def test_a_forged_source_does_not_pass_a_machine_policy(lab: Path) -> None:
    """t15-evil sends as t15-cli: the bridge drops it before our policy could accept it.
    The control, t15-gw (allow_spoofing), forges the same way and gets through."""
    send_udp(EVIL, "forged-by-evil", source=CLI_IP)
    send_udp(GW, "forged-by-gw", source=CLI_IP)
    got = received_after("after-forging")
    assert "forged-by-gw" in got, got  # forging works where nothing filters
    assert "forged-by-evil" not in got, got


def test_taking_another_machines_address_neither_passes_nor_steals_it(lab: Path) -> None:
    """t15-evil replaces its address with t15-cli's and announces it: its packets are
    dropped, and the bridge's other machines still reach the real t15-cli."""
    assert banner(DHCP, CLI_IP) == CLI
    sh(
        EVIL,
        f"ip -4 addr flush dev eth0 && ip addr add {CLI_IP}/24 dev eth0"
        f" && ip route replace default via {GATEWAY}",
    )
    # Announce: a ping from the stolen address makes the neighbours learn (or not) its MAC.
    sh(DHCP, "ip neigh flush all")
    assert not ping(EVIL, SRV_IP)
    assert not ping(EVIL, GATEWAY)
    send_udp(EVIL, "stolen-address")
    assert banner(DHCP, CLI_IP) == CLI
    got = received_after("after-stealing")
    assert "stolen-address" not in got, got


def test_a_changed_mac_loses_connectivity(lab: Path) -> None:
    assert ping(DHCP, GATEWAY)
    sh(
        DHCP,
        "ip link set dev eth0 down && ip link set dev eth0 address 02:15:15:15:15:15"
        " && ip link set dev eth0 up",
    )
    assert not ping(DHCP, GATEWAY)
    assert not ping(DHCP, CLI_IP)


def test_filters_and_rules_survive_an_incusd_restart(lab: Path) -> None:
    """Last: restarts the daemon (the shared one on the host, the runner's own inside it).
    Incus's NIC filters (its `bridge incus` table) and our table stay in the kernel; a
    forged source is still dropped, the control still passes."""
    # Back to their own MAC and address (the tests above changed them from inside).
    subprocess.run(
        ["incus", "restart", "--project", PROJECT[EVIL], EVIL, DHCP], check=True, timeout=120
    )
    listing = ["nft", "-s", "list", "table", "inet", NFT_TABLE]
    ours = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
    restart_incusd()
    assert subprocess.run(listing, capture_output=True, text=True, check=True).stdout == ours
    # Nothing to change, and every machine back with its address (the apply waits for it).
    code, out = lab_make(lab, "apply", "TAGS=infra", timeout=600)
    assert code == 0 and set(recap(out).values()) == {0}, out
    send_udp(EVIL, "forged-after-restart", source=CLI_IP)
    send_udp(GW, "control-after-restart", source=CLI_IP)
    got = received_after("after-restart")
    assert "control-after-restart" in got, got
    assert "forged-after-restart" not in got, got
