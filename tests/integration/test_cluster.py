"""A two-member Incus cluster, for real (issue 16): infra.yml `target` and a member down.

Two incusd in their own network namespaces (scripts/incus-netns.sh: t16c1 at 10.199.0.31
founds the cluster, t16c2 at 10.199.0.32 joins it) are the remote ``t16c``. The lab tree
(domains t16ca/t16cb on 10.197.x.0/24) pins one machine to each member through the domain's
and the machine's `target`, and leaves one to Incus's scheduler. Each bridge is created on
every member (each member has its own local bridge on the same subnet). Then: a changed
target is reported with the `incus move` that fixes it, never moved; and with t16c2 stopped
the plan ends within a bounded time with one line naming the member, first while the
heartbeat still reads it ONLINE (a request to it fails), then once the cluster marks it
OFFLINE. The fixture always removes both daemons and the client configuration.

Own lab: it needs a cluster, two incusd of its own in network namespaces (t16c1, t16c2) with
per-member targets and rules, and it stops member t16c2; the host's daemon, where every other
lab lives, is not clustered.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import recap, run
from tests.netns_daemons import Lab, LabTree, netns

C1, C2 = "t16c1", "t16c2"
DAEMONS = {C1: "10.199.0.31", C2: "10.199.0.32"}
REMOTE = "t16c"
BASE = "10.197"
IMAGE = "anklume/debian-12"
TABLE = "anklumet16c"
# Machine -> (domain, static address, the member it must be on; None: the scheduler's pick).
MACHINES = {"t16c-a1": ("t16ca", f"{BASE}.0.10", C1), "t16c-a2": ("t16ca", f"{BASE}.0.11", C2),
            "t16c-b1": ("t16cb", f"{BASE}.1.10", None)}
# A member stopped a moment ago stays ONLINE until it misses heartbeats for this long
# (seconds; Incus's default is 20 and its minimum 11).
OFFLINE_THRESHOLD = 11
# A liveness guard, not a performance figure: a plan that meets a stopped member must end
# (the probe gives up after 10 s), not wait for TCP timeouts; the bound leaves room for load.
PLAN_BOUND = 120


def infra() -> dict[str, Any]:
    machines: dict[str, dict[str, Any]] = {"t16ca": {}, "t16cb": {}}
    for name, (domain, ip, _member) in MACHINES.items():
        machines[domain][name] = {"type": "lxc", "ip": ip}
    machines["t16ca"]["t16c-a2"]["target"] = C2  # the machine's own beats its domain's
    return {"project_name": REMOTE,
            "global": {"base_subnet": BASE, "default_os_image": IMAGE, "incus_remote": REMOTE,
                       "admin_domain": ""},
            "domains": {"t16ca": {"subnet_id": 0, "ephemeral": True, "target": C1,
                                  "machines": machines["t16ca"]},
                        "t16cb": {"subnet_id": 1, "ephemeral": True,
                                  "machines": machines["t16cb"]}}}


class Cluster(LabTree):
    """The lab tree driven against the cluster."""

    def __init__(self, root: Path, lab: Lab) -> None:
        super().__init__(root, lab, REMOTE)
        # The instances (with their state) and the bridges after the second apply.
        self.state: list[dict[str, Any]] = []
        self.networks: list[dict[str, Any]] = []
        self.tables: dict[str, str] = {}  # each member's `nft list tables`


@pytest.fixture(scope="module")
def cluster(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    lab = Lab(base / "incus-conf", DAEMONS)
    try:
        lab.down()  # leftovers of an interrupted run go first
        lab.conf.mkdir(parents=True)
        netns("up", C1, DAEMONS[C1])
        netns("up", C2, DAEMONS[C2], "--bare")  # a joining member brings no storage pool
        netns("cluster", C1, C2)
        lab.trust(REMOTE, C1)
        lab.copy_image(IMAGE, REMOTE)
        lab.incus("config", "set", f"{REMOTE}:", "cluster.offline_threshold",
                  str(OFFLINE_THRESHOLD))
        (base / "tree").mkdir()
        c = Cluster(base / "tree", lab)
        c.sync_with_table(infra(), TABLE)
        c.make("apply", "apply")
        c.make("apply again", "apply")
        # Isolation: each member's kernel loads the rules; the plan names the member without.
        rules = str(c.root / "nftables" / f"{TABLE}.nft")
        c.out["deploy on c1"] = lab.on_host(C1, "bash", "scripts/deploy-nftables.sh",
                                            rules).stdout
        c.make("plan c1 deployed", "plan")
        lab.on_host(C2, "bash", "scripts/deploy-nftables.sh", rules)
        c.make("plan both deployed", "plan")
        c.tables = {m: lab.on_host(m, "nft", "list", "tables").stdout for m in DAEMONS}
        c.state = c.query("/1.0/instances?all-projects=true&recursion=2")
        c.networks = c.query("/1.0/networks?recursion=1")
        moved = copy.deepcopy(infra())
        moved["domains"]["t16ca"]["machines"]["t16c-a2"]["target"] = C1
        c.write(moved)
        c.make("plan moved target", "plan")
        c.write(infra())
        netns("stop", C2)
        c.make("plan member stopped", "plan", rc=None)
        deadline = time.monotonic() + OFFLINE_THRESHOLD + 30
        while time.monotonic() < deadline and "OFFLINE" not in lab.incus(
                "cluster", "list", f"{REMOTE}:", "--format", "csv"):
            time.sleep(1)
        c.make("plan member offline", "plan", rc=None)
        yield c
    finally:
        lab.down()


def test_each_machine_runs_on_its_declared_member_with_its_address(cluster: Cluster) -> None:
    insts = {i["name"]: i for i in cluster.state}
    assert sorted(insts) == sorted(MACHINES)
    for name, (domain, ip, member) in MACHINES.items():
        inst = insts[name]
        assert inst["project"] == domain and inst["status"] == "Running", inst
        assert inst["location"] == (member or inst["location"]) and inst["location"] in DAEMONS
        addresses = [a["address"] for a in inst["state"]["network"]["eth0"]["addresses"]
                     if a["family"] == "inet"]
        assert addresses == [ip], (name, addresses)


def test_each_bridge_exists_on_every_member(cluster: Cluster) -> None:
    nets = {n["name"]: n for n in cluster.networks}
    for i, domain in enumerate(("t16ca", "t16cb")):
        net = nets[f"net-{domain}"]
        assert net["status"] == "Created" and sorted(net["locations"]) == sorted(DAEMONS)
        assert net["config"]["ipv4.address"] == f"{BASE}.{i}.254/24"


def test_each_member_loads_the_rules_and_the_plan_names_the_member_without(
        cluster: Cluster) -> None:
    assert f"recorded user.anklume.nftables.{TABLE}.{C1}.sha256=" in cluster.out["deploy on c1"]
    flat = " ".join(cluster.out["plan c1 deployed"].split())  # the callback folds lines
    assert f"nftables table inet {TABLE} on {REMOTE} (missing on {REMOTE} member {C2}:" in flat
    assert f"member {C1}" not in flat, flat
    assert f"nftables table inet {TABLE}" not in cluster.out["plan both deployed"]
    for member in DAEMONS:
        assert f"table inet {TABLE}" in cluster.tables[member], member
    assert TABLE not in run(["nft", "list", "tables"])  # never in this host's kernel


def test_second_apply_changes_nothing(cluster: Cluster) -> None:
    out = cluster.out["apply again"]
    assert set(recap(out).values()) == {0}, out
    assert "apply: 0 created, 0 changed, 0 removed, 0 orphans" in out


def test_a_changed_target_is_reported_with_the_move_and_not_moved(cluster: Cluster) -> None:
    out = cluster.out["plan moved target"]
    assert (f"instance t16c-a2 (project t16ca) is on cluster member {C2}, infra.yml puts it "
            f"on {C1}: not moved") in out
    assert f"`incus move t16c-a2 --project t16ca --target {C1}`" in out
    assert "plan: 0 to create, 0 to change, 0 to remove" in out


@pytest.mark.parametrize(("step", "status"), [
    ("plan member stopped", "does not answer"),
    ("plan member offline", "is OFFLINE"),
])
def test_a_stopped_member_ends_the_plan_with_one_clear_line(cluster: Cluster, step: str,
                                                            status: str) -> None:
    out = cluster.out[step]
    print(f"{step}: {cluster.seconds[step]:.1f} s")  # shown with pytest -s
    assert cluster.seconds[step] < PLAN_BOUND, cluster.seconds
    lines = [line for line in out.splitlines() if f"cluster member {C2} of {REMOTE} " in line]
    assert lines and status in lines[0], out
    assert "t16c-a2" in lines[0] and "start its incusd" in lines[0]
