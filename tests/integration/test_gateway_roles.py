"""The gateway roles with real packets (ADR-093, issue 31): `tor_gateway`, Tor as a
transparent proxy for a domain that leaves through it, and `wireguard_gateway`, a WireGuard
client of systemd-networkd, as far as a kernel without WireGuard lets it be checked.

The "internet" is a network namespace this module creates, ``t32inet``, joined to the host
by a veth pair (``t32up`` on the host, 198.51.100.253/30; the namespace .254) and holding
documentation addresses (198.51.100.210, the WireGuard endpoint 198.51.100.170) with no
route out of it. The host routes 198.51.100.128/25 into it only, with a blackhole route
behind that one: no test packet can take the host's default route. test_egress's namespace
uses 198.51.100.0/24's lower half only (.10 to .53, a more general route than this one),
so the two run side by side. Not 203.0.113.0/24: on this test machine deb.debian.org
resolves to 203.0.113.80 (the package mirror the controller downloads from).

One lab, owner ``t32gw``, base 10.139, nft table ``anklumet32``, applied once: ``t32tor``
(``egress: none``: Tor's own attempts to reach the Tor network are dropped by the host and
never leave the machine) holding ``t32-tor`` (roles: tor_gateway), ``t32anon`` leaving
through it (``via: t32-tor``); ``t32wg`` (a list: the endpoint's UDP port only) holding
``t32-wg`` (roles: wireguard_gateway), ``t32vpn`` leaving through it (``via: t32-wg``).

This kernel has no WireGuard module (``ip link add x type wireguard`` fails): no tunnel comes
up here. What is checked of wireguard_gateway is what networkd gets (files, key mode), what
it says of them, the policy rules, nothing leaving without the tunnel, the refusal of a
wrong egress_gateway_out, and a second apply changing nothing.

Own lab: its gateways, their host_vars (keys, egress_gateway_out) and the "internet"
namespace are this module's alone, and a test rewrites a gateway's variables and applies,
which no shared lab may suffer.
"""

from __future__ import annotations

import base64
import contextlib
import os
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

OWNER = "t32gw"
PREFIX = "t32"
BASE = "10.139"
TABLE = "anklumet32"
NS = "t32inet"
UP = "t32up"
UP_HOST, UP_NS = "198.51.100.253", "198.51.100.254"
INTERNET = "198.51.100.128/25"
SERVER, ENDPOINT = "198.51.100.210", "198.51.100.170"
PROJECT = {"t32-tor": "t32tor", "t32-anon": "t32anon", "t32-wg": "t32wg", "t32-vpn": "t32vpn"}
TOR_GW = f"{BASE}.2.252"
ONION = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion"
VPN_DNS = "10.64.0.1"
# What the captures look for: any IPv4, and IPv6 but the link's own ICMPv6 (MLD, RS).
SEEN = "ip or (ip6 and not icmp6)"


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


PRIVATE_KEY, PEER_KEY = key(), key()


def description() -> dict[str, Any]:
    def box(d: int, **extra: Any) -> dict[str, Any]:
        return {"type": "lxc", "ip": f"{BASE}.{d}.10", **extra}

    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": ""},
        "domains": {
            "t32tor": {"subnet_id": 1, "ephemeral": True, "egress": "none",
                       "machines": {"t32-tor": box(1, roles=["tor_gateway"])}},
            "t32anon": {"subnet_id": 2, "ephemeral": True, "via": "t32-tor",
                        "machines": {"t32-anon": box(2)}},
            "t32wg": {"subnet_id": 3, "ephemeral": True, "egress": [
                {"to": ENDPOINT, "protocol": "udp", "ports": [51820],
                 "description": "the VPN's endpoint"}],
                "machines": {"t32-wg": box(3, roles=["wireguard_gateway"])}},
            "t32vpn": {"subnet_id": 4, "ephemeral": True, "via": "t32-wg",
                       "machines": {"t32-vpn": box(4)}},
        },
    }


def gateway_vars(root: Path) -> None:
    """What the user writes for each gateway (docs/network-isolation.md)."""
    keyfile = root / "wg-private.key"
    keyfile.write_text(PRIVATE_KEY + "\n", encoding="utf-8")
    keyfile.chmod(0o600)
    with (root / "host_vars" / "t32-tor.yml").open("a", encoding="utf-8") as f:
        f.write("egress_gateway_out: tor\n")
    with (root / "host_vars" / "t32-wg.yml").open("a", encoding="utf-8") as f:
        f.write(f"egress_gateway_out: wg0\negress_gateway_dns: {VPN_DNS}\n"
                f"wireguard_gateway_address: 10.64.0.2/32\n"
                f"wireguard_gateway_private_key_file: {keyfile}\n"
                f"wireguard_gateway_peer_public_key: {PEER_KEY}\n"
                f"wireguard_gateway_endpoint: {ENDPOINT}:51820\n")


def in_box(name: str, script: str, stdin: str = "",
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return internet_ns.in_box(PROJECT[name], name, script, stdin, timeout)


INTERNET_NS = Internet(NS, UP, INTERNET, UP_HOST, UP_NS, (SERVER, ENDPOINT))


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cleanup(PREFIX, TABLE)
    root = lab_tree(tmp_path_factory.mktemp("t32gateways"))
    try:
        with INTERNET_NS.up():
            sync_lab(root, description(), TABLE)
            gateway_vars(root)
            rc, out = lab_make(root, "apply", timeout=900)
            assert rc == 0, out
            assert PRIVATE_KEY not in out  # no_log: the key is never printed
            yield root
    finally:
        cleanup(PREFIX, TABLE)


def capture(seconds: float, expression: str) -> subprocess.Popen[str]:
    """tcpdump on the host's side of the uplink to the "internet", for SECONDS."""
    proc = subprocess.Popen(["timeout", str(seconds), "tcpdump", "-l", "-n", "-i", UP,
                             expression],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1)  # tcpdump is listening
    return proc


def control_packet() -> None:
    """One packet the host itself sends out of the uplink: the capture sees it, so the
    capture works (to port 7, which nothing of the domains uses)."""
    with contextlib.suppress(OSError), socket.create_connection((SERVER, 7), timeout=1):
        pass


def leaked(out: str) -> list[str]:
    """The captured lines that are not the control packet or its answer."""
    return [line for line in out.splitlines()
            if line.strip() and f"{SERVER}.7:" not in line and f"{SERVER}.7 >" not in line]


def counter(name: str, table: str, comment: str) -> int:
    """The packets of the rule with COMMENT in TABLE inside NAME."""
    text = in_box(name, f"nft list table inet {table}").stdout
    line = next(line for line in text.splitlines() if comment in line)
    return int(line.split("counter packets ")[1].split()[0])


# One DNS question (A argv[2]) over UDP to argv[1]: prints the first A answer, or
# "noanswer" / "timeout".
DNS_QUERY = """
import socket, sys
name = b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[2].split("."))
question = bytes.fromhex("123401000001000000000000") + name + bytes.fromhex("0000010001")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(question, (sys.argv[1], 53))
try:
    reply = s.recv(512)
except OSError:
    print("timeout")
    sys.exit()
answers = int.from_bytes(reply[6:8], "big")
print(socket.inet_ntoa(reply[-4:]) if answers and reply[-6:-4] == b"\\x00\\x04" else "noanswer")
"""


# -- tor_gateway -----------------------------------------------------------------------------

def test_tor_listens_on_the_carried_address(lab: Path) -> None:
    listening = in_box("t32-tor", "ss -Hltunp").stdout
    assert f"{TOR_GW}:9040" in listening and f"{TOR_GW}:5353" in listening, listening
    assert '"tor"' in listening, listening
    torrc = in_box("t32-tor", "cat /etc/tor/torrc").stdout
    assert "VirtualAddrNetworkIPv4 10.192.0.0/10" in torrc and "AutomapHostsOnResolve 1" in torrc


def test_a_tcp_connection_is_taken_by_tor_and_nothing_leaves(lab: Path) -> None:
    before = counter("t32-tor", "anklume_tor", "anklume: TCP to Tor")
    sniff = capture(20, SEEN)
    client = subprocess.Popen(["incus", "exec", "--project", "t32anon", "t32-anon", "--", "sh",
                               "-c", f"sleep 6 | nc -w 8 {SERVER} 80"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        # The gateway's kernel accepted it for Tor: an established connection from the
        # domain's bridge to the TransPort, held by the tor process. (Its source is the
        # machine's address, or the host's .254 on that bridge where the host's bridge
        # netfilter applies Incus's NAT to bridged frames, as on this test machine.)
        held = in_box("t32-tor", "ss -Htnp state established '( sport = :9040 )'").stdout
        assert f"{BASE}.2." in held and '"tor"' in held, held
    finally:
        client.wait(timeout=30)
    assert counter("t32-tor", "anklume_tor", "anklume: TCP to Tor") > before
    control_packet()
    out, _ = sniff.communicate(timeout=30)
    assert f"{SERVER}.7:" in out, out  # the capture works
    assert leaked(out) == [], out


def test_dns_is_answered_by_tors_dnsport(lab: Path) -> None:
    # The domain asks its resolver (the gateway's .252): Tor maps the name to an address
    # of its VirtualAddrNetwork without any network.
    got = in_box("t32-anon", f"python3 - {TOR_GW} {ONION}", stdin=DNS_QUERY).stdout.strip()
    assert got.startswith("10.") and 192 <= int(got.split(".")[1]) <= 255, got
    # A question to another resolver is taken by Tor too (no other server is asked).
    before = counter("t32-tor", "anklume_tor", "anklume: DNS to Tor")
    got = in_box("t32-anon", f"python3 - {SERVER} {ONION}", stdin=DNS_QUERY).stdout.strip()
    assert got.startswith("10."), got
    assert counter("t32-tor", "anklume_tor", "anklume: DNS to Tor") > before


def test_other_udp_icmp_and_ipv6_never_leave(lab: Path) -> None:
    before = counter("t32-tor", "anklume_tor", "anklume: not for Tor")
    sniff = capture(10, SEEN)
    in_box("t32-anon", f"printf 'q' | nc -u -w 1 {SERVER} 123; ping -c 1 -W 1 {SERVER}; "
                       f"ping -c 1 -W 1 {TOR_GW}; true")
    in_box("t32-anon", "ip -6 addr add fd00:139:2::10/64 dev eth0 nodad 2>/dev/null; "
                       "ip -6 route replace default dev eth0; "
                       "nc -6 -w 2 2001:db8::10 80 </dev/null; true")
    control_packet()
    out, _ = sniff.communicate(timeout=30)
    assert f"{SERVER}.7:" in out, out
    assert leaked(out) == [], out
    # The UDP datagram and the pings reached the gateway and were dropped there.
    assert counter("t32-tor", "anklume_tor", "anklume: not for Tor") > before


def test_tor_never_reaches_the_tor_network(lab: Path) -> None:
    """The gateway's domain has egress: none: Tor's attempts stop at the host."""
    sniff = capture(6, SEEN)
    control_packet()
    out, _ = sniff.communicate(timeout=30)
    assert leaked(out) == [], out
    state = in_box("t32-tor", "journalctl -u tor@default --no-pager -n 50").stdout
    assert "Bootstrapped 100%" not in state, state


# -- wireguard_gateway -----------------------------------------------------------------------

def test_networkd_gets_the_tunnel_and_the_key_stays_root_only(lab: Path) -> None:
    netdev = in_box("t32-wg", "cat /etc/systemd/network/05-anklume-wg0.netdev").stdout
    for line in ("Kind=wireguard", "PrivateKeyFile=/etc/systemd/network/anklume-wg0.key",
                 f"PublicKey={PEER_KEY}", f"Endpoint={ENDPOINT}:51820",
                 "AllowedIPs=0.0.0.0/0", "PersistentKeepalive=25", "RouteTable=off"):
        assert line in netdev, netdev
    assert PRIVATE_KEY not in netdev
    mode = in_box("t32-wg", "stat -c '%U %G %a' /etc/systemd/network/anklume-wg0.key")
    assert mode.stdout.split() == ["root", "systemd-network", "640"], mode
    assert in_box("t32-wg", "cat /etc/systemd/network/anklume-wg0.key").stdout.strip() == (
        PRIVATE_KEY)
    network = in_box("t32-wg", "cat /etc/systemd/network/05-anklume-wg0.network").stdout
    assert "Address=10.64.0.2/32" in network and "Table=51820" in network, network


def test_networkd_cannot_create_wg0_on_this_kernel(lab: Path) -> None:
    """What networkd says of the tunnel here (recorded; a kernel with WireGuard brings it up)."""
    assert run("sh", "-c", "ip link add t32wgprobe type wireguard", check=False).returncode != 0
    assert "wg0" not in in_box("t32-wg", "networkctl list --no-legend").stdout
    said = in_box("t32-wg", "journalctl -u systemd-networkd --no-pager | grep -i wg0").stdout
    assert said.strip(), "networkd says nothing of wg0"
    print(said)


def test_the_carried_interface_looks_up_the_tunnels_table(lab: Path) -> None:
    rules = in_box("t32-wg", "ip -4 rule list").stdout
    assert "10000:\tfrom all iif net-t32vpn lookup 51820" in rules, rules
    # The gateway's own traffic (to the endpoint) keeps the main table's route via eth0.
    own = in_box("t32-wg", f"ip -4 route get {ENDPOINT}").stdout
    assert "dev eth0" in own, own


def test_without_the_tunnel_nothing_leaves(lab: Path) -> None:
    sniff = capture(8, SEEN)
    in_box("t32-vpn", f"nc -w 2 {SERVER} 80 </dev/null; printf q | nc -u -w 1 {SERVER} 53; true")
    control_packet()
    out, _ = sniff.communicate(timeout=30)
    assert f"{SERVER}.7:" in out, out
    assert leaked(out) == [], out


def test_a_wrong_egress_gateway_out_is_refused_before_the_rules_load(lab: Path) -> None:
    allvars = lab / "host_vars" / "t32-wg.yml"
    text = allvars.read_text(encoding="utf-8")
    allvars.write_text(text.replace("egress_gateway_out: wg0", "egress_gateway_out: eth0"),
                       encoding="utf-8")
    try:
        rc, out = lab_make(lab, "apply", "I=t32-wg")
        assert rc != 0, out
        assert "egress_gateway_out is 'eth0', and this machine runs wireguard_gateway" in out, out
        table = in_box("t32-wg", "nft list table inet anklume_gateway").stdout
        assert 'oifname "wg0" accept' in table, table
    finally:
        allvars.write_text(text, encoding="utf-8")


def test_a_second_apply_changes_nothing(lab: Path) -> None:
    rc, out = lab_make(lab, "apply")
    assert rc == 0, out
    assert all(changed == 0 for changed in recap(out).values()), out
    assert PRIVATE_KEY not in out


def test_the_tools_exist() -> None:
    """No silent pass: the captures above need tcpdump (scripts/test.sh installs it)."""
    assert shutil.which("tcpdump"), "tcpdump is missing: run scripts/test.sh"
