"""Domain isolation with real containers and real packets (roles/incus_nftables).

Four domains (admin, perso, pro, homelab) get one bridge and one container
each, homelab a second one, plus a container on a bridge outside every domain
that stands for the outside world. The role is applied with hand-built
variables that follow docs/generated-vars.md into its own table
(``inet anklume_t6``), and every claim is checked with bounded pings and TCP
connections between the lab's containers. Tests run in file order: the incusd
restart, which briefly takes the daemon away (the shared one on the host, the runner's
own inside `make test-sandboxed`), runs last.

Own lab: it has no AnKLuMe tree: bridges net-t6* and containers t6-* are made with plain incus
and the nftables role runs with hand-built variables into inet anklume_t6; its tests turn
isolation off, flush and delete that table, re-create a bridge and restart incusd, which no
other module's lab would survive.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import isolation_lab as lab

pytestmark = pytest.mark.incus


@pytest.fixture(scope="module")
def boxes(incus: str) -> Iterator[dict[str, str]]:
    """The lab, built once for the module; yields container name -> IPv6."""
    lab.cleanup()
    try:
        lab.build(incus)
        yield lab.wait_addresses()
    finally:
        lab.cleanup()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolation")


def apply_ok(work: Path, *extra: str, **overrides: object) -> lab.Applied:
    result = lab.apply_role(work, *extra, **overrides)
    assert result.rc == 0, result.output
    return result


def expected_v4(src: lab.Box, dst: lab.Box) -> bool:
    return src.domain == dst.domain or src.domain == lab.ADMIN


def matrix() -> dict[str, bool]:
    """Ping every ordered pair of domain containers once (IPv4)."""
    probes = {
        f"{s.name}->{d.name}": (lab.ping, s.name, d.ip)
        for s, d in itertools.permutations(lab.BOXES, 2)
    }
    return lab.parallel(probes)


def test_without_isolation_domains_reach_each_other(boxes: dict[str, str], work: Path) -> None:
    """Control: with isolation off, the lab really forwards between bridges (v4 and v6)."""
    apply_ok(work, anklume_isolation=False)
    assert lab.live_table() == ""
    got = lab.parallel(
        {
            "v4": (lab.ping, "t6-per", lab.BY_NAME["t6-pro"].ip),
            "v6": (lab.ping, "t6-per", boxes["t6-pro"]),
            "tcp": (lab.tcp, "t6-per", lab.BY_NAME["t6-lab"].ip, lab.CLOSED_PORT),
        }
    )
    assert got == {"v4": True, "v6": True, "tcp": True}, "without isolation the lab must forward"


def test_apply_loads_the_table_and_the_file(work: Path) -> None:
    result = apply_ok(work)
    assert result.changed >= 1
    table = lab.live_table()
    assert "hook forward priority filter - 10" in table
    text = (work / f"{lab.TABLE}.nft").read_text()
    assert f"delete table inet {lab.TABLE}" in text  # atomic replacement
    assert (
        'ip daddr 10.130.4.10/32 tcp dport { 11434 } accept comment "perso to the homelab LLM"'
        in text
    )


def test_traffic_matrix_ipv4(boxes: dict[str, str]) -> None:
    """Every non-admin pair blocked both ways, admin reaches all, same domain flows.

    admin -> X succeeding also proves return traffic: the reply X -> admin is a
    non-admin to admin packet that only `ct state established` lets through.
    """
    got = matrix()
    want = {
        f"{s.name}->{d.name}": expected_v4(s, d) for s, d in itertools.permutations(lab.BOXES, 2)
    }
    wrong = {k: v for k, v in got.items() if v != want[k]}
    assert not wrong, f"pairs that disagree with the policy (True = got through): {wrong}"


def test_ipv6_is_blocked_between_domains(boxes: dict[str, str]) -> None:
    got = lab.parallel(
        {
            "per->pro": (lab.ping, "t6-per", boxes["t6-pro"]),
            "pro->per": (lab.ping, "t6-pro", boxes["t6-per"]),
            "lab->per": (lab.ping, "t6-lab", boxes["t6-per"]),
            "lab->lab2": (lab.ping, "t6-lab", boxes["t6-lab2"]),
            "adm->pro": (lab.ping, "t6-adm", boxes["t6-pro"]),
        }
    )
    assert got == {
        "per->pro": False,
        "pro->per": False,
        "lab->per": False,
        "lab->lab2": True,
        "adm->pro": True,
    }


def test_declared_policy_opens_exactly_one_port_to_one_machine(boxes: dict[str, str]) -> None:
    lab_ip, lab2_ip = lab.BY_NAME["t6-lab"].ip, lab.BY_NAME["t6-lab2"].ip
    got = lab.parallel(
        {
            "per->lab:policy": (lab.tcp, "t6-per", lab_ip, lab.POLICY_PORT),
            "per->lab:other": (lab.tcp, "t6-per", lab_ip, lab.CLOSED_PORT),
            "per->lab2:policy": (lab.tcp, "t6-per", lab2_ip, lab.POLICY_PORT),
            "per->lab:ping": (lab.ping, "t6-per", lab_ip),
            "per->lab:v6": (lab.tcp, "t6-per", boxes["t6-lab"], lab.POLICY_PORT),
            "pro->lab:policy": (lab.tcp, "t6-pro", lab_ip, lab.POLICY_PORT),
            # The listener on the closed port is up: admin and same-domain reach it.
            "adm->lab:other": (lab.tcp, "t6-adm", lab_ip, lab.CLOSED_PORT),
            "lab2->lab:other": (lab.tcp, "t6-lab2", lab_ip, lab.CLOSED_PORT),
        }
    )
    assert got == {
        "per->lab:policy": True,
        "per->lab:other": False,
        "per->lab2:policy": False,  # a machine means its own IP, not its bridge
        "per->lab:ping": False,
        "per->lab:v6": False,  # a machine endpoint is its IPv4 address
        "pro->lab:policy": False,
        "adm->lab:other": True,
        "lab2->lab:other": True,
    }


def dns_query(name: str) -> bytes:
    """One DNS A query over UDP, built by hand (the image has no dig)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x7436, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)


def test_outside_dhcp_and_dns_keep_working(boxes: dict[str, str]) -> None:
    """The outside stays reachable; DNS from the bridge's own dnsmasq and ping to its own
    gateway pass the host's input filter."""
    out_ip = lab.BY_NAME["t6-out"].ip
    got = lab.parallel(
        {
            "per->outside": (lab.ping, "t6-per", out_ip),
            "pro->outside:v6": (lab.ping, "t6-pro", boxes["t6-out"]),
            "per->gateway": (lab.ping, "t6-per", "10.130.2.254"),
        }
    )
    assert got == {"per->outside": True, "pro->outside:v6": True, "per->gateway": True}
    query = dns_query("t6-per.incus").hex()
    script = (
        "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
        f"s.sendto(bytes.fromhex('{query}'),('10.130.2.254',53));"
        "d=s.recv(512);sys.exit(0 if d[:2]==bytes.fromhex('7436') and d[3]&15==0 "
        "and int.from_bytes(d[6:8],'big')>0 else 1)"
    )
    dns = lab.run("incus", "exec", "t6-per", "--", "python3", "-c", script, check=False)
    assert dns.returncode == 0, f"DNS from the bridge's dnsmasq failed: {dns.stderr}"
    # The dnsmasq of another domain (the host too, through its gateway address) stays closed.
    other = script.replace("10.130.2.254", "10.130.3.254")
    dns = lab.run("incus", "exec", "t6-per", "--", "python3", "-c", other, check=False)
    assert dns.returncode != 0 and "timed out" in dns.stderr, dns.stderr


@pytest.fixture(scope="module")
def host_listener() -> Iterator[str]:
    """TCP listeners on the host on every address (IPv4 and IPv6) on both host ports, as a
    service bound to all addresses is; yields the host's link-local address on net-t6per."""
    stop = threading.Event()
    servers = [
        socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
        for port in (lab.HOST_PORT, lab.HOST_POLICY_PORT)
    ]

    def serve(server: socket.socket) -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    addrs = json.loads(lab.run("ip", "-6", "-j", "addr", "show", "dev", "net-t6per").stdout)
    link_local = next(
        a["local"] for i in addrs for a in i["addr_info"] if a["local"].startswith("fe80:")
    )
    try:
        yield link_local
    finally:
        stop.set()
        for t in threads:
            t.join()
        for server in servers:
            server.close()


def test_the_host_is_closed_to_domains_except_a_declared_port(
    boxes: dict[str, str], host_listener: str
) -> None:
    """A host service bound to all addresses: closed through the domain's own gateway and
    through another domain's, IPv4, IPv6 and link-local; `to: host` opens one port, on the
    source domain's own gateway. The bridge outside every domain proves the listener is up."""
    port, opened = lab.HOST_PORT, lab.HOST_POLICY_PORT
    got = lab.parallel(
        {
            "per->own-gw": (lab.connects, "t6-per", "10.130.2.254", port),
            "per->other-gw": (lab.connects, "t6-per", "10.130.3.254", port),
            "per->own-gw:v6": (lab.connects, "t6-per", "fd00:130:2::1", port),
            "per->other-gw:v6": (lab.connects, "t6-per", "fd00:130:3::1", port),
            "per->link-local": (lab.connects, "t6-per", f"{host_listener}%eth0", port),
            "adm->own-gw": (lab.connects, "t6-adm", "10.130.1.254", port),
            "per->policy": (lab.connects, "t6-per", "10.130.2.254", opened),
            "per->policy:v6": (lab.connects, "t6-per", "fd00:130:2::1", opened),
            "per->policy:other-gw": (lab.connects, "t6-per", "10.130.3.254", opened),
            "pro->policy": (lab.connects, "t6-pro", "10.130.3.254", opened),
            "outside->host": (lab.connects, "t6-out", "10.130.9.254", port),
            "outside->host:v6": (lab.connects, "t6-out", "fd00:130:9::1", port),
        }
    )
    assert got == {
        "per->own-gw": False,
        "per->other-gw": False,
        "per->own-gw:v6": False,
        "per->other-gw:v6": False,
        "per->link-local": False,
        "adm->own-gw": False,  # the admin domain reaches Incus through its socket proxy
        "per->policy": True,
        "per->policy:v6": True,
        "per->policy:other-gw": False,  # `to: host` is the source bridge's own address
        "pro->policy": False,
        "outside->host": True,
        "outside->host:v6": True,
    }
    assert "anklume: domain to host" in lab.live_table()


def lease_expiry(bridge: str, ip: str) -> int:
    leases = Path(f"/var/lib/incus/networks/{bridge}/dnsmasq.leases").read_text()
    rows = [line.split() for line in leases.splitlines()]  # "duid ..." lines have 2 fields
    return next(int(row[0]) for row in rows if len(row) > 2 and row[2] == ip)


def test_dhcp_renewal_and_a_new_lease_pass_the_host_filter(boxes: dict[str, str]) -> None:
    """A renewal (unicast to the gateway) moves the lease's expiry; a fresh DISCOVER
    (broadcast, after the address is gone) brings the static address back."""
    per = lab.BY_NAME["t6-per"]
    before = lease_expiry(per.network, per.ip)
    time.sleep(1.2)  # dnsmasq's expiry has a one-second resolution
    lab.run("incus", "exec", per.name, "--", "networkctl", "renew", "eth0")
    deadline = time.monotonic() + 15
    while lease_expiry(per.network, per.ip) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lease_expiry(per.network, per.ip) > before, "the DHCP renewal was not answered"
    lab.run(
        "incus",
        "exec",
        per.name,
        "--",
        "sh",
        "-c",
        "ip -4 addr flush dev eth0 && networkctl reconfigure eth0",
    )
    boxes[per.name] = lab.wait_addresses([per.name], timeout=60)[per.name]


def test_second_apply_changes_nothing_and_repairs_drift(work: Path) -> None:
    before = (work / f"{lab.TABLE}.nft").read_text()
    table = lab.live_table()
    assert apply_ok(work).changed == 0
    assert lab.live_table() == table
    assert (work / f"{lab.TABLE}.nft").read_text() == before
    # Drift: someone flushes our chain by hand. Plan sees it, apply repairs it.
    lab.run("nft", "flush", "chain", "inet", lab.TABLE, "forward")
    plan = apply_ok(work, "--check")
    assert plan.changed == 1 and "anklume: inter-domain" in plan.output
    assert "inter-domain" not in lab.live_table()
    assert apply_ok(work).changed == 1
    assert lab.live_table() == table
    assert apply_ok(work).changed == 0


def test_invalid_ruleset_stops_the_apply(work: Path) -> None:
    """nft -c runs before anything is written or loaded; the error is shown."""
    table = lab.live_table()
    nft_file = work / f"{lab.TABLE}.nft"
    text = nft_file.read_text()
    # A table name nft cannot parse, written to the same file path.
    bad = lab.apply_role(work, incus_nftables_table="t6 bad", incus_nftables_file=str(nft_file))
    assert bad.rc != 0
    assert "failed to validate" in bad.output and "Error: syntax error" in bad.output
    assert nft_file.read_text() == text
    assert lab.live_table() == table
    unknown = lab.apply_role(work, anklume_admin_domain="nope")
    assert unknown.rc != 0 and "'nope' is not a domain" in unknown.output
    assert lab.live_table() == table


def test_deploy_script_for_the_admin_container_mode(work: Path) -> None:
    """mode=file only renders; scripts/deploy-nftables.sh loads it on the host."""
    lab.run("nft", "delete", "table", "inet", lab.TABLE)
    rendered = apply_ok(work, incus_nftables_mode="file")
    flat = " ".join(rendered.output.split())  # the callback folds long messages
    assert "not loaded (this machine does not run the Incus daemon)" in flat
    assert "On the host, run: make nftables-deploy FROM=admin" in flat
    assert lab.live_table() == ""
    script = str(lab.ROOT / "scripts/deploy-nftables.sh")
    nft_file = str(work / f"{lab.TABLE}.nft")
    # --no-record: the host's Incus keeps no key of this test (test_remote checks the record).
    first = lab.run(script, "--no-record", nft_file)
    assert "loaded table inet anklume_t6" in first.stdout
    second = lab.run(script, "--no-record", nft_file)
    assert "nothing loaded" in second.stdout
    assert apply_ok(work).changed == 0  # role and script agree on the canonical form
    broken = work / "broken.nft"
    broken.write_text(f"table inet {lab.TABLE} {{\n}}\ndelete table inet {lab.TABLE}\nbogus\n")
    failed = lab.run(script, str(broken), check=False)
    assert failed.returncode == 2 and "nft -c rejected" in failed.stderr
    assert "drop" in lab.live_table()


def test_boot_copy(work: Path) -> None:
    boot = work / "etc" / f"{lab.TABLE}.nft"
    result = apply_ok(work, incus_nftables_boot=True, incus_nftables_boot_file=str(boot))
    assert boot.read_text() == (work / f"{lab.TABLE}.nft").read_text()
    if not lab.systemd_manages_incusd():
        assert "No systemd here" in result.output


def test_rules_survive_bridge_recreation(boxes: dict[str, str]) -> None:
    """Rules match interface names: a deleted and re-created bridge is still isolated."""
    pro = lab.BY_NAME["t6-pro"]
    lab.sh(
        f"set -e; incus stop --force {pro.name}; incus config device remove {pro.name} eth0\n"
        f"incus network delete {pro.network}\n"
        f"incus network create {' '.join(lab.bridge_args(pro.network, pro.subnet_id))}\n"
        f"incus config device add {pro.name} eth0 nic network={pro.network} name=eth0"
        f" ipv4.address={pro.ip}\nincus start {pro.name}"
    )
    # Its address comes back over DHCP with the table loaded.
    v6 = lab.wait_addresses([pro.name])[pro.name]
    boxes[pro.name] = v6
    got = lab.parallel(
        {
            "per->pro": (lab.ping, "t6-per", pro.ip),
            "pro->per": (lab.ping, pro.name, lab.BY_NAME["t6-per"].ip),
            "pro->per:v6": (lab.ping, pro.name, boxes["t6-per"]),
            "adm->pro": (lab.ping, "t6-adm", pro.ip),
        }
    )
    assert got == {"per->pro": False, "pro->per": False, "pro->per:v6": False, "adm->pro": True}


def test_isolation_off_then_on(work: Path) -> None:
    per, pro = lab.BY_NAME["t6-per"], lab.BY_NAME["t6-pro"]
    off = apply_ok(work, anklume_isolation=False)
    assert off.changed >= 1 and lab.live_table() == ""
    assert "delete table inet anklume_t6" in (work / f"{lab.TABLE}.nft").read_text()
    assert lab.ping(per.name, pro.ip)
    assert apply_ok(work, anklume_isolation=False).changed == 0
    apply_ok(work)
    assert not lab.ping(per.name, pro.ip)
    assert lab.ping("t6-adm", pro.ip)


def test_rules_survive_an_incusd_restart(
    boxes: dict[str, str], work: Path, host_listener: str
) -> None:
    """Last on purpose: restarts the daemon (on the host, the shared one, brought back with
    scripts/host.sh; inside the runner, its own, with systemctl)."""
    apply_ok(work)  # the rules in place, also when this test runs alone
    table = lab.live_table()
    assert table, "no ruleset loaded before the restart"
    # A proxy device of our own shows that other instances' proxies outlive the restart.
    lab.run(
        "incus",
        "config",
        "device",
        "add",
        "t6-adm",
        "t6-sock",
        "proxy",
        "bind=instance",
        "listen=unix:/tmp/t6.sock",
        "connect=unix:/var/lib/incus/unix.socket",
    )
    proxies = [pid for pid, role in lab.incusd_processes().items() if role == "forkproxy"]
    assert proxies, "the proxy device started no forkproxy"
    lab.restart_incusd()
    assert all(Path(f"/proc/{pid}").exists() for pid in proxies), "a proxy device died"
    assert lab.live_table() == table
    lab.wait_addresses()
    got = lab.parallel(
        {
            "per->pro": (lab.ping, "t6-per", lab.BY_NAME["t6-pro"].ip),
            "lab->adm": (lab.ping, "t6-lab", lab.BY_NAME["t6-adm"].ip),
            "per->pro:v6": (lab.ping, "t6-per", boxes["t6-pro"]),
            "adm->lab": (lab.ping, "t6-adm", lab.BY_NAME["t6-lab"].ip),
            "per->host": (lab.connects, "t6-per", "10.130.2.254", lab.HOST_PORT),
            "per->host:policy": (lab.connects, "t6-per", "10.130.2.254", lab.HOST_POLICY_PORT),
        }
    )
    assert got == {
        "per->pro": False,
        "lab->adm": False,
        "per->pro:v6": False,
        "adm->lab": True,
        "per->host": False,
        "per->host:policy": True,
    }
    assert apply_ok(work).changed == 0
