"""A remote Incus host, for real (issue 16): infra.yml with ``global.incus_remote``.

A second incusd in its own network namespace (scripts/incus-netns.sh: daemon ``t16r`` at
10.199.0.21, HTTPS) is the remote host. The controller side uses its own client
configuration (INCUS_CONF), trusts the remote with ``make remote-token`` (run there, in the
namespace) and ``make remote-add``, then drives a lab tree (two domains t16ra/t16rb on
10.196.x.0/24, three containers) through the whole user path: apply (the image is copied to
the remote), apply again, plan, status, snapshot, restore, destroy.

Isolation (ADR-069): the rules belong to the remote host's kernel. The plan says they are
missing, a ping crosses domains, scripts/deploy-nftables.sh run in the namespace loads them
and records their sha256 on that Incus server; then the ping is dropped and the plan says
nothing about rules, until infra.yml changes (stale). The controller's kernel never gets
the table. A disposable of t16rb (`make disp`) is made and deleted there too. Every object
lives in the daemon, which the fixture always removes.

Own lab: it needs a second incusd in a network namespace (t16r), trusted through its own client
configuration (INCUS_CONF); the rules are loaded in that daemon's kernel and the tests restore
and destroy there, and the host's daemon, where the other labs live, is no remote.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import REPO, recap, run
from tests.netns_daemons import Lab, LabTree

DAEMON = "t16r"
ADDRESS = "10.199.0.21"
REMOTE = "t16r"
BASE = "10.196"
TABLE = "anklumet16r"
IMAGE = "anklume/debian-12"
A1, A2, B1 = "t16r-a1", "t16r-a2", "t16r-b1"
MACHINES = {A1: ("t16ra", f"{BASE}.0.10"), A2: ("t16ra", f"{BASE}.0.11"),
            B1: ("t16rb", f"{BASE}.1.10")}


def infra(extra_domain: bool = False) -> dict[str, Any]:
    def domain(subnet_id: int, machines: dict[str, Any]) -> dict[str, Any]:
        return {"description": f"remote domain {subnet_id}", "subnet_id": subnet_id,
                "ephemeral": True, "machines": machines}

    def machine(name: str, roles: list[str]) -> dict[str, Any]:
        return {"type": "lxc", "ip": MACHINES[name][1], **({"roles": roles} if roles else {})}

    domains = {"t16ra": domain(0, {A1: machine(A1, ["base_system"]), A2: machine(A2, [])}),
               "t16rb": {**domain(1, {B1: machine(B1, ["base_system"])}),
                         "disposables": True}}
    if extra_domain:
        domains["t16rc"] = domain(2, {})
    return {"project_name": "t16r",
            "global": {"base_subnet": BASE, "default_os_image": IMAGE, "incus_remote": REMOTE,
                       "admin_domain": ""},
            "domains": domains}


class Remote(LabTree):
    """The lab tree, its client configuration and what each step printed or left."""

    def __init__(self, root: Path, lab: Lab) -> None:
        super().__init__(root, lab, REMOTE)
        (self.root / "nftables.yml").symlink_to(REPO / "nftables.yml")  # for `make nftables`

    def on_remote_host(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.on_host(DAEMON, *args, check=check)

    def instances(self) -> dict[str, dict[str, Any]]:
        items = self.query("/1.0/instances?all-projects=true&recursion=2") or []
        return {i["name"]: i for i in items}

    def ping(self, name: str, address: str) -> bool:
        out = self.lab.incus("exec", f"{REMOTE}:{name}", "--project", MACHINES[name][0], "--",
                             "ping", "-c", "1", "-W", "1", address, check=False)
        return " 1 received" in out

    def record(self) -> str:
        return self.lab.incus("config", "get", f"{REMOTE}:",
                              f"user.anklume.nftables.{TABLE}.sha256").strip()

    def rules(self) -> Path:
        return self.root / "nftables" / f"{TABLE}.nft"


def deploy_line(state: str) -> str:
    return f"> nftables table inet {TABLE} on {REMOTE} ({state} on {REMOTE}"


@pytest.fixture(scope="module")
def remote(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("remote")
    lab = Lab(base / "incus-conf", {DAEMON: ADDRESS})
    try:
        lab.up()  # down() first: leftovers of an interrupted run go
        (base / "tree").mkdir()
        r = Remote(base / "tree", lab)
        r.make("add without token", "remote-add", f"REMOTE={REMOTE}", rc=2)
        token = r.on_remote_host("make", "--no-print-directory", "remote-token",
                                 "CLIENT=anklume-t16r").stdout.strip()
        r.make("add", "remote-add", f"REMOTE={REMOTE}", f"TOKEN={token}")
        r.make("add again", "remote-add", f"REMOTE={REMOTE}", f"TOKEN={token}")
        r.sync_with_table(infra(), TABLE)
        r.make("apply", "apply")
        r.make("apply again", "apply")
        r.make("remote-image again", "remote-image")
        r.make("plan before deploy", "plan")
        r.make("nftables", "nftables")
        yield r
    finally:
        lab.down()


def test_trust_comes_from_make_targets(remote: Remote) -> None:
    assert remote.out["add without token"].splitlines()[0] == (
        "remote-add: REMOTE=<name> and TOKEN=<token> are required (on the remote host: "
        "make remote-token CLIENT=<this machine>)")
    assert f"remote-add: added {REMOTE} (https://{ADDRESS}:8443)" in remote.out["add"]
    assert "already exists" in remote.out["add again"]
    trusted = remote.on_remote_host("incus", "config", "trust", "list", "--format", "json")
    assert [c["name"] for c in json.loads(trusted.stdout)] == ["anklume-t16r"]


def test_apply_creates_everything_on_the_remote_and_copies_the_image_once(
        remote: Remote) -> None:
    assert f"remote-image: copied {IMAGE} to {REMOTE}" in remote.out["apply"]
    assert "remote-image" not in remote.out["apply again"] + remote.out["remote-image again"]
    assert remote.query(f"/1.0/images/aliases/{IMAGE}")["name"] == IMAGE
    insts = remote.instances()
    assert sorted(insts) == sorted(MACHINES)
    for name, (project, ip) in MACHINES.items():
        inst = insts[name]
        assert inst["project"] == project and inst["status"] == "Running", inst
        addresses = [a["address"] for a in inst["state"]["network"]["eth0"]["addresses"]
                     if a["family"] == "inet"]
        assert addresses == [ip], (name, addresses)
        assert inst["config"]["user.anklume.owner"] == "t16r"
    nets = {n["name"]: n for n in remote.query("/1.0/networks?recursion=1")}
    assert nets["net-t16ra"]["config"]["ipv4.address"] == f"{BASE}.0.254/24"
    assert nets["net-t16rb"]["config"]["ipv4.address"] == f"{BASE}.1.254/24"
    # Provisioning went through the connection with the remote: base_system's work is there.
    tz = remote.lab.incus("exec", f"{REMOTE}:{A1}", "--project", "t16ra", "--",
                          "cat", "/etc/timezone")
    assert tz.strip() == "Etc/UTC"
    # Nothing of it on this machine's own Incus.
    assert A1 not in run(["incus", "list", "--all-projects", "--format", "csv", "-c", "n"])
    assert recap(remote.out["apply"])[A1] > 0


def test_second_apply_and_plan_change_nothing(remote: Remote) -> None:
    again = recap(remote.out["apply again"])
    # A2 declares no roles: the provision check does not look at it (group
    # anklume_provision), and nothing drifted on the others (ADR-082).
    assert again and A2 not in again and set(again.values()) == {0}, remote.out["apply again"]
    assert "apply: 0 created, 0 changed, 0 removed, 0 orphans" in remote.out["apply again"]
    assert "plan: 0 to create, 0 to change, 0 to remove, 0 orphans" in \
        remote.out["plan before deploy"]


def test_status_reads_the_remote(remote: Remote) -> None:
    out = remote.make("status", "status")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert sorted(rows) == sorted([d, n, "lxc", "RUNNING", ip]
                                  for n, (d, ip) in MACHINES.items()), out


def test_a_disposable_runs_on_the_remote_and_is_gone_after(remote: Remote) -> None:
    """make disp against the remote (ADR-084): made there (the image is there already), its
    address from t16rb's disposable range, the command's status reported, nothing left."""
    out = remote.make("disp", "disp", "DOMAIN=t16rb", "CMD=ip -4 -o addr show dev eth0; exit 5",
                      rc=2)
    assert "exited with status 5" in out, out
    assert f"inet {BASE}.1.200/24" in out, out
    assert not [n for n, i in remote.instances().items()
                if "user.anklume.disposable" in (i.get("config") or {})]


def test_isolation_is_deployed_on_the_remote_host_and_planned_from_its_record(
        remote: Remote) -> None:
    # The remote's kernel forwards between its bridges (Incus sets it).
    fwd = remote.on_remote_host("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    assert fwd == "1"
    # ...yet nothing leaves this machine: the remote host has no default route.
    assert remote.on_remote_host("ip", "route", "show", "default").stdout.strip() == ""
    # Rendered here, loaded nowhere yet: the plan names the host's step; traffic crosses.
    rules = remote.rules()
    assert f"table inet {TABLE}" in rules.read_text()
    plan = remote.out["plan before deploy"]
    assert deploy_line("missing") in plan and \
        f"run there, as root: scripts/deploy-nftables.sh {TABLE}.nft" in plan, plan
    assert remote.record() == ""
    alone = " ".join(remote.out["nftables"].split())  # `make nftables`, no plan summary
    assert f"table inet {TABLE} on {REMOTE}: missing on {REMOTE}" in alone, alone
    assert remote.ping(A1, MACHINES[B1][1]), "no route between the domains before the rules"
    # On the remote host: load and record.
    out = remote.on_remote_host("bash", "scripts/deploy-nftables.sh", str(rules)).stdout
    assert f"loaded table inet {TABLE}" in out, out
    sha = hashlib.sha256(rules.read_bytes()).hexdigest()
    assert remote.record() == sha
    listed = remote.on_remote_host("nft", "list", "table", "inet", TABLE).stdout
    assert "anklume: inter-domain" in listed
    # The controller's own kernel never got the table.
    assert run(["nft", "list", "table", "inet", TABLE], check=False) == ""
    assert not remote.ping(A1, MACHINES[B1][1]), "t16ra reached t16rb through the rules"
    assert remote.ping(A1, MACHINES[A2][1]), "the rules cut a domain in two"
    current = remote.make("plan after deploy", "plan")
    assert f"nftables table inet {TABLE}" not in current, current
    again = remote.on_remote_host("bash", "scripts/deploy-nftables.sh", str(rules)).stdout
    assert "nothing loaded" in again and "recorded" not in again, again
    # A new domain changes the rules: the record is stale until the host deploys again.
    remote.write(infra(extra_domain=True))
    stale = remote.make("plan stale", "plan")
    assert deploy_line("stale") in stale and f"it holds sha256 {sha[:12]}" in stale, stale
    remote.write(infra())
    assert deploy_line("stale") not in remote.make("plan back", "plan")


def test_snapshot_and_restore_on_the_remote(remote: Remote) -> None:
    remote.make("snapshot", "snapshot", "NAME=t16s")
    for name, (project, _ip) in MACHINES.items():
        snaps = remote.query(f"/1.0/instances/{name}/snapshots?project={project}")
        assert [s.split("?")[0].rsplit("/", 1)[-1] for s in snaps] == ["t16s"], name
    marker = "/root/after-snapshot"
    remote.lab.incus("exec", f"{REMOTE}:{A2}", "--project", "t16ra", "--", "touch", marker)
    remote.make("restore", "restore", "NAME=t16s")
    left = remote.lab.incus("exec", f"{REMOTE}:{A2}", "--project", "t16ra", "--",
                            "ls", "/root", check=False)
    assert "after-snapshot" not in left
    assert remote.instances()[A2]["status"] == "Running"


def test_destroy_deletes_everything_on_the_remote(remote: Remote) -> None:
    remote.make("destroy", "destroy")
    assert remote.instances() == {}
    projects = [p.rsplit("/", 1)[-1] for p in remote.query("/1.0/projects")]
    assert projects == ["default"]
    managed = [n["name"] for n in remote.query("/1.0/networks?recursion=1") if n["managed"]]
    assert managed == []
