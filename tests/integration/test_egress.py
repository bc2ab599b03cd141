"""A domain's way out with real packets (ADR-093): egress lists, none, open, and a domain
that leaves through a gateway machine and fails closed without it.

The "internet" is a network namespace this module creates, ``t31inet``, joined to the host
by a veth pair (``t31up`` on the host, 203.0.113.1/30; the namespace 203.0.113.2) and
holding servers on documentation addresses (198.51.100.10, .11, .12 and .53) with no route
out of it. The host routes 198.51.100.0/24 into it only, with a blackhole route behind
that one: no test packet can take the host's default route. ``mirror.t31.test`` is a line
this module adds to /etc/hosts (the controller's and the bridges' dnsmasq's resolver),
198.51.100.12.

One lab, owner ``t31eg``, base 10.138, nft table ``anklumet31``, applied once:
``t31list`` (a list, and ``t31-narrow`` narrowed to the mirror), ``t31none``, ``t31open``,
``t31gw`` (``nat: false``: its packets arrive with their own address) holding ``t31-gw``,
and ``t31vpn`` leaving through it (``via: t31-gw``).

Own lab: its egress lists, gateway and "internet" namespace are this module's alone, and
its tests stop the gateway and rewrite its variables, which no shared lab may suffer.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import lab_make, lab_tree, recap, sync_lab
from tests.integration import internet_ns
from tests.integration.internet_ns import Internet, run
from tests.integration.reconcile_lab import cleanup

OWNER = "t31eg"
PREFIX = "t31"
BASE = "10.138"
TABLE = "anklumet31"
NS = "t31inet"
UP = "t31up"
API, OTHER, MIRROR, RESOLVER = "198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.53"
MIRROR_NAME = "mirror.t31.test"
HOSTS_LINE = f"{MIRROR} {MIRROR_NAME}  # anklume test_egress\n"
PROJECT = {"t31-list": "t31list", "t31-narrow": "t31list", "t31-none": "t31none",
           "t31-open": "t31open", "t31-gw": "t31gw", "t31-vpn": "t31vpn"}
GW_ADDRESS = f"{BASE}.5.10"
SERVER_LOG = "/tmp/t31inet-peers.log"

# Listens on every (address, port) below and writes "local peer" per connection, and
# logs every UDP datagram to .53 the same way; the namespace has no route out.
SERVERS = f"""
import socket, selectors, sys
sel = selectors.DefaultSelector()
for addr in ("{API}", "{OTHER}", "{MIRROR}"):
    for port in (80, 443):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port)); s.listen(16); sel.register(s, selectors.EVENT_READ, "tcp")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("{RESOLVER}", 53))
sel.register(u, selectors.EVENT_READ, "udp")
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if key.data == "tcp":
            c, peer = s.accept(); local = c.getsockname()
            line = f"{{local[0]}}:{{local[1]}} {{peer[0]}}"
            c.sendall((line + "\\n").encode()); c.close()
        else:
            _, peer = s.recvfrom(512); line = f"{RESOLVER}:53 {{peer[0]}}"
        with open("{SERVER_LOG}", "a") as log:
            log.write(line + "\\n")
"""


def description() -> dict[str, Any]:
    def box(d: int, n: int = 10, **extra: Any) -> dict[str, Any]:
        return {"type": "lxc", "ip": f"{BASE}.{d}.{n}", **extra}

    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": ""},
        "domains": {
            "t31list": {"subnet_id": 1, "ephemeral": True, "egress": [
                {"to": API, "protocol": "tcp", "ports": [443], "description": "the API"},
                {"to": MIRROR_NAME, "protocol": "tcp", "ports": [443]}],
                "machines": {"t31-list": box(1), "t31-narrow": box(1, 11, egress=[
                    {"to": MIRROR_NAME, "protocol": "tcp", "ports": [443]}])}},
            "t31none": {"subnet_id": 2, "ephemeral": True, "egress": "none",
                        "machines": {"t31-none": box(2)}},
            "t31open": {"subnet_id": 3, "ephemeral": True, "machines": {"t31-open": box(3)}},
            "t31gw": {"subnet_id": 5, "ephemeral": True, "nat": False,
                      "machines": {"t31-gw": box(5)}},
            "t31vpn": {"subnet_id": 6, "ephemeral": True, "via": "t31-gw",
                       "machines": {"t31-vpn": box(6)}},
        },
    }


def in_box(name: str, script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return internet_ns.in_box(PROJECT[name], name, script, stdin)


def fetch(name: str, address: str, port: int) -> str:
    """What the server at ADDRESS:PORT says to NAME ("" when nothing answers in 3 s)."""
    return in_box(name, f"nc -w 3 {address} {port} </dev/null").stdout.strip()


def served(address: str, port: int, peer: str) -> str:
    return f"{address}:{port} {peer}"


def hosts_line(add: bool) -> None:
    text = Path("/etc/hosts").read_text(encoding="utf-8")
    kept = "".join(line for line in text.splitlines(keepends=True)
                   if "anklume test_egress" not in line)
    Path("/etc/hosts").write_text(kept + (HOSTS_LINE if add else ""), encoding="utf-8")


INTERNET = Internet(NS, UP, "198.51.100.0/24", "203.0.113.1", "203.0.113.2",
                    (API, OTHER, MIRROR, RESOLVER), back=(f"{BASE}.5.0/24",))


@contextlib.contextmanager
def internet() -> Iterator[subprocess.Popen[str]]:
    """The namespace with its servers; replies go to the host's NAT address (connected)
    and to t31gw's own (nat: false)."""
    with INTERNET.up():
        Path(SERVER_LOG).write_text("", encoding="utf-8")
        server = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", SERVERS],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        try:
            yield server
        finally:
            server.kill()
            server.wait()


def peers() -> list[str]:
    return Path(SERVER_LOG).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cleanup(PREFIX, TABLE)
    root = lab_tree(tmp_path_factory.mktemp("t31egress"))
    hosts_line(True)
    try:
        with internet():
            sync_lab(root, description(), TABLE)
            rc, out = lab_make(root, "apply", timeout=900)
            assert rc == 0, out
            yield root
    finally:
        cleanup(PREFIX, TABLE)
        hosts_line(False)


def test_a_list_reaches_what_it_names_and_nothing_else(lab: Path) -> None:
    assert fetch("t31-list", API, 443) == served(API, 443, "203.0.113.1")
    assert fetch("t31-list", API, 80) == ""
    assert fetch("t31-list", OTHER, 443) == ""
    # The allowed name resolves through the bridge's resolver (the host's dnsmasq) ...
    got = in_box("t31-list", f"getent hosts {MIRROR_NAME}").stdout.split()
    assert got[:1] == [MIRROR]
    assert fetch("t31-list", MIRROR, 443) == served(MIRROR, 443, "203.0.113.1")
    assert fetch("t31-list", MIRROR, 80) == ""
    # ... and no other resolver is reachable: the question never arrives.
    in_box("t31-list", f"printf 'q' | nc -u -w 1 {RESOLVER} 53")
    assert not any(line.startswith(f"{RESOLVER}:53") for line in peers())


def test_a_machine_narrows_its_domain(lab: Path) -> None:
    assert fetch("t31-narrow", MIRROR, 443) == served(MIRROR, 443, "203.0.113.1")
    assert fetch("t31-narrow", API, 443) == ""  # its domain allows it; the machine not


def test_none_lets_nothing_out_and_open_everything(lab: Path) -> None:
    for address, port in ((API, 443), (API, 80), (OTHER, 443)):
        assert fetch("t31-none", address, port) == ""
        assert fetch("t31-open", address, port) == served(address, port, "203.0.113.1")


def test_the_plan_says_what_each_domain_reaches(lab: Path) -> None:
    rc, out = lab_make(lab, "plan")
    assert rc == 0, out
    assert f"i egress t31list: {API} tcp/443, {MIRROR_NAME} tcp/443 ({MIRROR})" in out
    assert f"i egress t31-narrow: {MIRROR_NAME} tcp/443 ({MIRROR})" in out
    assert "i egress t31none: none" in out
    assert "i egress t31open: open" in out
    assert "i egress t31vpn: via t31-gw" in out


def capture(seconds: float, expression: str) -> subprocess.Popen[str]:
    """tcpdump on the host's side of the uplink to the "internet", for SECONDS."""
    proc = subprocess.Popen(["timeout", str(seconds), "tcpdump", "-l", "-n", "-i", UP,
                             expression],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1)  # tcpdump is listening
    return proc


def test_a_gateway_domain_leaves_with_the_gateways_address(lab: Path) -> None:
    assert fetch("t31-vpn", API, 80) == served(API, 80, GW_ADDRESS)
    assert fetch("t31-vpn", OTHER, 443) == served(OTHER, 443, GW_ADDRESS)
    # Its DNS goes to the gateway, which asks its own bridge's resolver.
    assert in_box("t31-vpn", f"getent hosts {MIRROR_NAME}").stdout.split()[:1] == [MIRROR]
    # The host's resolver on its own bridge does not answer it.
    query = in_box("t31-vpn", f"python3 - {BASE}.6.254", stdin=DNS_QUERY)
    assert query.stdout.strip() == "timeout", query


# One DNS question (A mirror.t31.test) over UDP to argv[1]: prints "answer" or "timeout".
DNS_QUERY = """
import socket, sys
name = b"".join(bytes([len(p)]) + p.encode() for p in "mirror.t31.test".split("."))
question = bytes.fromhex("123401000001000000000000") + name + bytes.fromhex("0000010001")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(question, (sys.argv[1], 53))
try:
    s.recv(512)
    print("answer")
except OSError:
    print("timeout")
"""


def test_without_its_gateway_a_domain_fails_closed(lab: Path) -> None:
    subprocess.run(["incus", "stop", "--project", "t31gw", "t31-gw"], check=True, timeout=120)
    try:
        sniff = capture(8, "net 198.51.100.0/24")
        assert fetch("t31-vpn", API, 80) == ""
        # Straight at the host's own address on its bridge, as a default route would.
        in_box("t31-vpn", f"ip route replace default via {BASE}.6.254 && nc -w 2 {API} 80 "
                          "</dev/null; true")
        out, _ = sniff.communicate(timeout=30)
        assert "198.51.100" not in out, out
    finally:
        in_box("t31-vpn", "ip route replace default via " + f"{BASE}.6.252")
        subprocess.run(["incus", "start", "--project", "t31gw", "t31-gw"], check=True,
                       timeout=120)
    # Back without an apply: the gateway's boot unit and networkd restore it.
    for _ in range(30):
        if fetch("t31-vpn", API, 80):
            break
        time.sleep(1)
    assert fetch("t31-vpn", API, 80) == served(API, 80, GW_ADDRESS)


def test_ipv6_from_a_gateway_domain_never_leaves(lab: Path) -> None:
    sniff = capture(6, "ip6 and not icmp6")
    in_box("t31-vpn", "ip -6 addr add fd00:138:6::10/64 dev eth0 nodad 2>/dev/null; "
                      "ip -6 route replace default dev eth0; "
                      "nc -6 -w 2 2001:db8::10 80 </dev/null; true")
    out, _ = sniff.communicate(timeout=30)
    assert out.strip() == "", out


def test_a_tunnel_that_is_down_drops_the_domains_traffic(lab: Path) -> None:
    """The gateway sends the domain out through wg0 only (as wireguard_gateway sets it);
    no wg0 exists there, so nothing leaves."""
    allvars = lab / "host_vars" / "t31-gw.yml"
    text = allvars.read_text(encoding="utf-8")
    allvars.write_text(text + "egress_gateway_out: wg0\n", encoding="utf-8")
    try:
        rc, out = lab_make(lab, "apply", "I=t31-gw")
        assert rc == 0, out
        assert fetch("t31-vpn", API, 80) == ""
    finally:
        allvars.write_text(text, encoding="utf-8")
        rc, out = lab_make(lab, "apply", "I=t31-gw")
        assert rc == 0, out
    assert fetch("t31-vpn", API, 80) == served(API, 80, GW_ADDRESS)


def test_doctor_sees_and_repairs_a_way_out_opened_by_hand(lab: Path) -> None:
    assert f"ok    nftables table inet {TABLE} matches nftables/{TABLE}.nft" in \
        lab_make(lab, "doctor")[1]
    run("nft", "flush", "chain", "inet", TABLE, "egress-t31list")  # the list, gone
    assert fetch("t31-list", OTHER, 443) == served(OTHER, 443, "203.0.113.1")
    _, out = lab_make(lab, "doctor")
    assert f"FAIL  nftables table inet {TABLE} differs from nftables/{TABLE}.nft" in out, out
    assert "out of them, is not cut the way the tree says" in out
    lab_make(lab, "doctor", "FIX=1")
    assert fetch("t31-list", OTHER, 443) == ""
    assert f"ok    nftables table inet {TABLE} matches" in lab_make(lab, "doctor")[1]


def test_a_second_apply_changes_nothing(lab: Path) -> None:
    rc, out = lab_make(lab, "apply")
    assert rc == 0, out
    assert all(changed == 0 for changed in recap(out).values()), out


def test_the_tools_exist() -> None:
    """No silent pass: the capture above needs tcpdump (scripts/test.sh installs it)."""
    assert shutil.which("tcpdump"), "tcpdump is missing: run scripts/test.sh"
    assert socket.inet_aton(API)
