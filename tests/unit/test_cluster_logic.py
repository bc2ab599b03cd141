"""Clusters, without a daemon: infra.yml `target`, where instances are created, how bridges
are created on every member, and the member check that runs before any change.

What Incus does with these requests is tested on a real two-member cluster
(tests/integration/test_cluster.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import IncusError
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

from tests.unit.fake_incus import FakeIncus, managed, module, run
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

CLUSTER = module("incus_cluster")
NET = {"ipv4.address": "10.1.0.254/24", "ipv6.address": "none"}
# NET as created without an owner: our marker alone.
MARKED = {**NET, "user.anklume.managed": "true"}
INFRA = """\
domains:
  pro:
    subnet_id: 2
    target: node1
    machines:
      pro-a: {}
      pro-b: {target: node2}
      pro-c: {target: ""}
  perso:
    subnet_id: 3
    machines:
      perso-a: {}
"""


# -- infra.yml target -> host_vars -> desired instances ----------------------------------
def test_a_machine_takes_its_domains_target_unless_it_names_its_own(tmp_path: Path) -> None:
    assert sync(tmp_path, INFRA).code == 0
    targets = {p.stem: yaml.safe_load(p.read_text())["instance_target"]
               for p in (tmp_path / "host_vars").glob("*.yml")}
    assert targets == {"pro-a": "node1", "pro-b": "node2", "pro-c": "", "perso-a": ""}


DOMAINS = {"pro": {"project": "pro", "network": "net-pro", "machines": ["a", "b"]}}
HOSTVARS = {"a": {"instance_domain": "pro", "instance_target": "node2"},
            "b": {"instance_domain": "pro"}}


def test_desired_instances_and_placements_carry_the_target() -> None:
    assert [i["target"] for i in ds.instances(["a", "b"], HOSTVARS, DOMAINS, "img")] == \
        ["node2", ""]
    assert ds.placements(["a", "b"], HOSTVARS, DOMAINS) == [
        {"name": "a", "project": "pro", "target": "node2"},
        {"name": "b", "project": "pro", "target": ""}]


# -- incus_instance ----------------------------------------------------------------------
def inst(name: str, location: str) -> dict[str, Any]:
    return {"name": name, "project": "pro", "type": "container", "status": "Running",
            "location": location, "profiles": ["default"], "description": "",
            "config": managed({"security.protection.delete": "false"}), "devices": {},
            "state": {"network": {"eth0": {"addresses": [
                {"family": "inet", "scope": "global", "address": "10.1.0.5"}]}}}}


def spec(name: str, target: str = "") -> dict[str, Any]:
    return {"name": name, "project": "pro", "image": "img", "target": target,
            "config": {"security.protection.delete": "false"}}


def test_an_instance_is_created_on_its_target_member_or_where_incus_places_it() -> None:
    client = FakeIncus()
    run("incus_instance", {"instances": [spec("a", "node2"), spec("b")], "owner": "anklume",
                           "wait": False}, client)
    assert [(m, p) for m, p, _proj, _d in client.writes] == [
        ("POST", "/1.0/instances?target=node2"), ("POST", "/1.0/instances")]


def test_an_instance_on_another_member_is_reported_with_the_move_never_moved() -> None:
    client = FakeIncus(instances=[inst("a", "node1"), inst("b", "node2")])
    result = run("incus_instance", {"instances": [spec("a", "node2"), spec("b", "node2")],
                                    "owner": "anklume"}, client)
    assert client.writes == [] and not result["changed"]
    [entry] = result["plan"]
    assert (entry["name"], entry["action"]) == ("a", "info")
    assert "incus move a --project pro --target node2" in entry["reason"]
    assert result["warnings"] == [entry["reason"]]


# -- incus_network on a cluster ----------------------------------------------------------
def test_a_bridge_is_created_on_every_member_then_once_with_its_config() -> None:
    client = FakeIncus(members=["node2", "node1"])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}],
                                   "owner": "anklume"}, client)
    assert [e["action"] for e in result["plan"]] == ["create"]
    posts = [(p, d) for _m, p, _proj, d in client.writes]
    assert [d["config"] for _p, d in posts[:2]] == [{}, {}]
    assert posts[2][1]["config"] == managed(NET)
    assert [p for p, _d in posts] == ["/1.0/networks"] * 3


def test_member_creates_name_their_member(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeIncus(members=["node1", "node2"])
    targets = []
    query = client.query

    def spy(path: str, method: str = "GET", **kw: Any) -> Any:
        if method == "POST":
            targets.append((kw.get("params") or {}).get("target"))
        return query(path, method, **kw)
    monkeypatch.setattr(client, "query", spy)
    run("incus_network", {"networks": [{"name": "net-a", "config": NET}]}, client)
    assert targets == ["node1", "node2", None]


def test_a_bridge_left_pending_is_finished_on_the_missing_members_only() -> None:
    pending = {"name": "net-a", "config": {}, "status": "Pending", "locations": ["node1"]}
    client = FakeIncus(networks=[pending], members=["node1", "node2"])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}]}, client)
    assert [e["action"] for e in result["plan"]] == ["create"]
    assert len(client.writes) == 2 and client.writes[1][3]["config"] == MARKED


def test_a_single_server_gets_one_create_and_a_created_bridge_nothing() -> None:
    client = FakeIncus()
    run("incus_network", {"networks": [{"name": "net-a", "config": NET}]}, client)
    assert len(client.writes) == 1
    done = {"name": "net-a", "config": MARKED, "status": "Created", "description": ""}
    again = FakeIncus(networks=[done], members=["node1", "node2"])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}]}, again)
    assert again.writes == [] and not result["changed"]


# -- incus_cluster -----------------------------------------------------------------------
class Server:
    """GET answers of a cluster: members by status, instances by location, silent members."""

    def __init__(self, members: dict[str, str] | None, located: dict[str, str],
                 silent: tuple[str, ...] = ()) -> None:
        self.members, self.located, self.silent = members, located, silent
        self.calls = 0

    def get(self, path: str, project: str | None = None, params: dict | None = None,
            what: str | None = None) -> Any:
        self.calls += 1
        target = (params or {}).get("target")
        if path == "/1.0" and target in self.silent:
            raise IncusError(f"{what}: incus query GET /1.0 timed out after 10s")
        if path == "/1.0":
            return {"environment": {"server_clustered": self.members is not None}}
        if path == "/1.0/cluster/members":
            return [{"server_name": n, "status": s, "message": "No heartbeat for 21s"
                     if s != "Online" else "Fully operational"}
                    for n, s in (self.members or {}).items()]
        return [{"name": n, "project": "pro", "location": loc} for n, loc in self.located.items()]


def check(server: Server, instances: list[dict[str, str]]) -> tuple[dict[str, Any], list[str]]:
    instances = [{"project": "pro", **i} for i in instances]
    result, warnings = CLUSTER.check(server, instances, "lab", 10)
    return dict(result), list(warnings)


def test_a_member_that_holds_or_will_hold_instances_and_is_offline_stops_the_run() -> None:
    server = Server({"node1": "Online", "node2": "Offline"}, {"a": "node2"})
    result, warnings = check(server, [{"name": "a", "target": ""},
                                      {"name": "b", "target": "node1"}])
    [line] = result["problems"]
    assert line.startswith("cluster member node2 of lab is OFFLINE (No heartbeat for 21s)")
    assert "holds or is to hold a" in line and "start its incusd" in line
    assert result["placement"] == {"pro/a": "node2", "pro/b": "node1"}
    assert warnings == [] and result["plan"][0]["action"] == "info"


def test_a_member_still_online_by_its_heartbeat_but_silent_is_named_within_the_timeout() -> None:
    server = Server({"node1": "Online", "node2": "Online"}, {}, silent=("node2",))
    result, _ = check(server, [{"name": "b", "target": "node2"}])
    [line] = result["problems"]
    assert "node2 of lab does not answer (no answer within 10s" in line


def test_an_offline_member_that_holds_nothing_declared_is_only_a_warning() -> None:
    server = Server({"node1": "Online", "node2": "Offline"}, {"a": "node1"})
    result, warnings = check(server, [{"name": "a", "target": ""}])
    assert result["problems"] == []
    assert warnings and "node2 of lab is OFFLINE" in warnings[0]


def test_an_unknown_target_and_a_target_on_a_single_server_are_refused() -> None:
    result, _ = check(Server({"node1": "Online"}, {}), [{"name": "a", "target": "node9"}])
    assert "cluster lab has no member node9 (members: node1)" in result["problems"][0]
    single = Server(None, {})
    result, _ = check(single, [{"name": "a", "target": "node1"}, {"name": "b", "target": ""}])
    [line] = result["problems"]
    assert "machine a declares target: node1, but Incus on lab is not a cluster" in line
    assert single.calls == 1
