"""The reconcile skeleton and the diff logic of the object modules, on FakeIncus (ADR-056).

What Incus does with the requests is tested on the real daemon (tests/integration/);
here: which objects are created, changed (which keys), left alone, kept, removed or
reported as orphans, what each request carries, and that nothing is written in check
mode or before an ownership conflict.
"""

from __future__ import annotations

import pytest

from tests.unit.fake_incus import FakeIncus, managed, run

pytestmark = pytest.mark.unit

NET = {"ipv4.address": "10.1.0.254/24", "ipv4.nat": "true"}


def bridge(name: str, config: dict | None = None, owner: str = "anklume", **extra: object) -> dict:
    return {"name": name, "config": managed(config if config is not None else NET, owner),
            "description": "", **extra}


def entries(result: dict) -> list[tuple]:
    return [(e["kind"], e["name"], e["action"], *(e.get("keys") or [])) for e in result["plan"]]


# -- the result vocabulary ---------------------------------------------------------------
@pytest.mark.parametrize("name,option", [("incus_network", "networks"),
                                         ("incus_project", "projects"),
                                         ("incus_profile", "profiles"),
                                         ("incus_instance", "instances")])
def test_every_object_module_returns_the_one_vocabulary(name: str, option: str) -> None:
    result = run(name, {option: []}, FakeIncus())
    assert {"changed", "plan", "orphans", "diff", "incus_calls"} <= set(result)
    assert "results" not in result and "api_calls" not in result


# -- networks ----------------------------------------------------------------------------
def test_network_missing_is_created_with_our_markers() -> None:
    client = FakeIncus()
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}],
                                   "owner": "anklume"}, client)
    assert entries(result) == [("network", "net-a", "create")]
    assert result["changed"]
    [(method, path, _project, data)] = client.writes
    assert (method, path) == ("POST", "/1.0/networks")
    assert data["config"] == managed(NET)
    assert data["type"] == "bridge"


def test_network_equal_to_its_declaration_is_left_unchanged() -> None:
    client = FakeIncus(networks=[bridge("net-a", {**NET, "volatile.x": "1"})])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}],
                                   "owner": "anklume"}, client)
    assert result["plan"] == [] and not result["changed"] and client.writes == []


def test_network_change_names_its_keys_and_keeps_the_keys_incus_added() -> None:
    client = FakeIncus(networks=[bridge("net-a", {**NET, "ipv4.nat": "false", "bridge.mtu": "1500"},
                                        owner="anklume")])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET,
                                                 "description": "d"}],
                                   "owner": "anklume"}, client)
    assert entries(result) == [("network", "net-a", "change", "ipv4.nat", "description")]
    [(method, _path, _project, data)] = client.writes
    assert method == "PUT"
    assert data["config"]["bridge.mtu"] == "1500"  # not ours to remove
    assert data["config"]["ipv4.nat"] == "true"
    assert data["description"] == "d"


def test_network_values_are_compared_as_incus_strings() -> None:
    client = FakeIncus(networks=[bridge("net-a", {"ipv4.nat": "true", "mtu": "1500"})])
    result = run("incus_network", {"networks": [{"name": "net-a",
                                                 "config": {"ipv4.nat": True, "mtu": 1500}}],
                                   "owner": "anklume"}, client)
    assert result["plan"] == []


def test_network_without_our_marker_is_left_alone_and_said() -> None:
    client = FakeIncus(networks=[{"name": "net-a", "config": {"ipv4.nat": "false"}}])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET}]}, client)
    assert entries(result) == [("network", "net-a", "foreign")]
    assert result["warnings"] == ["network net-a exists without the anklume marker: left alone"]
    assert client.writes == [] and not result["changed"]


def test_another_owners_network_fails_before_any_write() -> None:
    client = FakeIncus(networks=[bridge("net-a", owner="other")])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET},
                                                {"name": "net-b", "config": {}}],
                                   "owner": "anklume"}, client)
    assert result["failed"] and result["step"] == "checking owners"
    assert "belongs to anklume project 'other', not 'anklume'" in result["msg"]
    assert entries(result) == [("network", "net-a", "conflict")]
    assert client.writes == []


def test_network_subnet_clash_fails_before_any_write() -> None:
    client = FakeIncus(networks=[bridge("net-old", {"ipv4.address": "10.1.0.254/24"})])
    result = run("incus_network", {"networks": [
        {"name": "net-new", "config": {"ipv4.address": "10.1.0.1/24"}}]}, client)
    assert result["failed"] and result["step"] == "checking subnets"
    assert "overlaps 10.1.0.0/24 of the existing bridge net-old" in result["msg"]
    assert client.writes == []


def test_network_orphans_are_ours_in_our_naming_scheme_only() -> None:
    client = FakeIncus(networks=[bridge("net-gone"), bridge("net-theirs", owner="other"),
                                 bridge("lxdbr0"), {"name": "net-foreign", "config": {}},
                                 bridge("net-kept")])
    result = run("incus_network", {"networks": [], "declared": ["net-kept"],
                                   "report_orphans": True, "owner": "anklume"}, client)
    assert result["orphans"] == ["net-gone"]
    assert entries(result) == [("network", "net-gone", "orphan")]


def test_network_pruned_deletes_free_orphans_and_keeps_used_ones() -> None:
    client = FakeIncus(networks=[bridge("net-free"),
                                 bridge("net-used", used_by=["/1.0/instances/x"])])
    result = run("incus_network", {"state": "pruned", "owner": "anklume"}, client)
    assert entries(result) == [("network", "net-free", "remove"), ("network", "net-used", "keep")]
    assert result["warnings"] == ["network net-used kept: still used by /1.0/instances/x"]
    assert client.writes == [("DELETE", "/1.0/networks/net-free", None, None)]


def test_network_absent_never_deletes_what_is_not_ours() -> None:
    client = FakeIncus(networks=[{"name": "net-a", "config": {}}])
    result = run("incus_network", {"networks": [{"name": "net-a"}], "state": "absent"}, client)
    assert result["plan"] == [] and client.writes == []
    assert result["warnings"] == ["network net-a is not managed by anklume: not deleted"]


def test_check_mode_plans_everything_and_writes_nothing() -> None:
    client = FakeIncus(networks=[bridge("net-a", {"ipv4.nat": "false"}), bridge("net-gone",
                                                                              used_by=["x"])])
    result = run("incus_network", {"networks": [{"name": "net-a", "config": NET},
                                                {"name": "net-b", "config": {}}],
                                   "report_orphans": True, "owner": "anklume"},
                 client, check_mode=True)
    assert [e[:3] for e in entries(result)] == [("network", "net-a", "change"),
                                               ("network", "net-b", "create"),
                                               ("network", "net-gone", "orphan")]
    assert client.writes == [] and len(result["diff"]) == 2


# -- projects ----------------------------------------------------------------------------
DEVICES = {"root": {"type": "disk", "path": "/", "pool": "default"},
           "eth0": {"type": "nic", "name": "eth0", "network": "net-a"}}


def test_project_created_with_its_default_profile() -> None:
    client = FakeIncus()
    result = run("incus_project", {"projects": [{"name": "a", "default_devices": DEVICES}]},
                 client)
    assert entries(result) == [("project", "a", "create")]
    assert [(m, p, proj) for m, p, proj, _ in client.writes] == [
        ("POST", "/1.0/projects", None), ("PUT", "/1.0/profiles/default", "a")]
    assert client.writes[1][3]["devices"] == DEVICES


def test_project_default_profile_devices_drift_is_a_profile_change() -> None:
    client = FakeIncus(
        projects=[{"name": "a", "config": managed(), "description": ""}],
        profiles=[{"project": "a", "name": "default", "config": {},
                   "devices": {**DEVICES, "eth0": {**DEVICES["eth0"], "network": "net-b"}}}])
    result = run("incus_project", {"projects": [{"name": "a", "default_devices": DEVICES}],
                                   "owner": "anklume"}, client)
    assert entries(result) == [("profile", "a/default", "change", "devices.eth0")]
    assert result["plan"][0]["project"] == "a"


def test_project_with_leftovers_is_kept_on_prune() -> None:
    client = FakeIncus(projects=[
        {"name": "gone", "config": managed(), "used_by": ["/1.0/profiles/default?project=gone",
                                                          "/1.0/instances/x?project=gone"]},
        {"name": "empty", "config": managed(), "used_by": ["/1.0/profiles/default?project=empty"]},
        {"name": "default", "config": managed()}])
    result = run("incus_project", {"state": "pruned", "owner": "anklume"}, client)
    assert entries(result) == [("project", "empty", "remove"), ("project", "gone", "keep")]
    assert result["warnings"] == ["project gone kept: it still holds /1.0/instances/x?project=gone"]
    assert client.writes == [("DELETE", "/1.0/projects/empty", None, None)]


# -- profiles ----------------------------------------------------------------------------
def test_profile_change_keys_name_config_devices_and_description() -> None:
    client = FakeIncus(profiles=[{"project": "a", "name": "gpu", "description": "",
                                  "config": managed({"limits.cpu": "2", "x.y": "1"}),
                                  "devices": {"gpu": {"type": "gpu"}}}])
    result = run("incus_profile", {"profiles": [
        {"project": "a", "name": "gpu", "config": {"limits.cpu": "4"}, "description": "d",
         "devices": {"gpu": {"type": "gpu", "id": "0"}}}], "owner": "anklume"}, client)
    assert entries(result) == [("profile", "a/gpu", "change", "config.limits.cpu",
                                "config.x.y", "devices.gpu", "description")]
    [(method, path, project, data)] = client.writes
    assert (method, path, project) == ("PUT", "/1.0/profiles/gpu", "a")
    assert "x.y" not in data["config"]  # a profile holds exactly its declaration


def test_profile_orphans_carry_their_project_and_skip_default_profiles() -> None:
    client = FakeIncus(profiles=[{"project": "a", "name": "old", "config": managed()},
                                 {"project": "a", "name": "default", "config": managed()}])
    result = run("incus_profile", {"report_orphans": True, "owner": "anklume"}, client)
    assert result["orphans"] == ["a/old"]
    assert result["plan"] == [{"kind": "profile", "name": "a/old", "action": "orphan",
                               "project": "a"}]


def test_profile_removal_has_no_diff_block() -> None:
    client = FakeIncus(profiles=[{"project": "a", "name": "old", "config": managed()}])
    result = run("incus_profile", {"profiles": [{"project": "a", "name": "old"}],
                                   "state": "absent", "owner": "anklume"}, client)
    assert entries(result) == [("profile", "a/old", "remove")] and result["diff"] == []


# -- instances ---------------------------------------------------------------------------
def instance(name: str, project: str = "a", status: str = "Running", **extra: object) -> dict:
    base = {"name": name, "project": project, "status": status, "type": "container",
            "profiles": ["default"], "description": "", "devices": {},
            "config": managed({"security.protection.delete": "true", "volatile.uuid": "u",
                               "image.os": "debian", "user.note": "mine"})}
    return {**base, **extra}


SPEC = {"name": "a-dev", "project": "a", "config": {"security.protection.delete": "true"}}


def test_instance_without_drift_is_unchanged() -> None:
    result = run("incus_instance", {"instances": [SPEC], "owner": "anklume", "wait": False},
                 FakeIncus(instances=[instance("a-dev")]))
    assert result["plan"] == [] and not result["changed"]


def test_instance_drift_removes_owned_keys_and_leaves_ignored_prefixes() -> None:
    cur = instance("a-dev")
    cur["config"]["limits.cpu"] = "2"  # not declared, not ignored: drift
    client = FakeIncus(instances=[cur])
    result = run("incus_instance", {"instances": [SPEC], "owner": "anklume", "wait": False},
                 client)
    assert entries(result) == [("instance", "a-dev", "change", "config.limits.cpu")]
    [(method, _path, project, data)] = client.writes
    assert (method, project) == ("PUT", "a")
    assert "limits.cpu" not in data["config"]
    assert {"volatile.uuid", "image.os", "user.note"} <= set(data["config"])


def test_instance_drift_in_devices_profiles_description_and_state() -> None:
    eth0 = {"type": "nic", "network": "net-a", "ipv4.address": "10.0.0.1"}
    cur = instance("a-dev", status="Stopped", profiles=["default", "gpu"], description="old",
                   devices={"eth0": eth0})
    spec = {**SPEC, "devices": {"eth0": {"type": "nic", "network": "net-a",
                                         "ipv4.address": "10.0.0.2"}}}
    client = FakeIncus(instances=[cur])
    result = run("incus_instance", {"instances": [spec], "owner": "anklume", "wait": False},
                 client)
    assert entries(result) == [("instance", "a-dev", "change", "devices.eth0", "profiles",
                                "description", "state")]
    assert client.waves == [["starting instance a-dev"]]


def test_instance_only_stopped_is_started_without_an_update() -> None:
    client = FakeIncus(instances=[instance("a-dev", status="Stopped")])
    result = run("incus_instance", {"instances": [SPEC], "owner": "anklume", "wait": False},
                 client)
    assert entries(result) == [("instance", "a-dev", "change", "state")]
    assert result["diff"] == []
    assert [w[0] for w in client.writes] == ["PUT"]  # the state change only
    assert client.writes[0][1] == "/1.0/instances/a-dev/state"


def test_instance_left_frozen_is_resumed_not_started() -> None:
    """An interrupted backup can leave an instance paused: Incus refuses `start` ("already
    running"), so apply asks it to unfreeze (met on this machine, a backup bench killed)."""
    client = FakeIncus(instances=[instance("a-dev", status="Frozen")])
    result = run("incus_instance", {"instances": [SPEC], "owner": "anklume", "wait": False},
                 client)
    assert entries(result) == [("instance", "a-dev", "change", "state")]
    assert client.waves == [["resuming frozen instance a-dev"]]
    assert client.writes[0][1:2] == ("/1.0/instances/a-dev/state",)
    assert client.writes[0][3]["action"] == "unfreeze"


def test_instance_new_static_address_restarts_a_running_instance() -> None:
    client = FakeIncus(instances=[instance("a-dev", devices={
        "eth0": {"type": "nic", "ipv4.address": "10.0.0.1"}})])
    spec = {**SPEC, "devices": {"eth0": {"type": "nic", "ipv4.address": "10.0.0.2"}}}
    run("incus_instance", {"instances": [spec], "owner": "anklume", "wait": False}, client)
    assert client.waves == [["restarting instance a-dev"]]


def test_instance_new_nic_filters_apply_without_a_restart() -> None:
    """Incus applies security.* of a running NIC live: only the update is written."""
    eth0 = {"type": "nic", "network": "net-a", "ipv4.address": "10.0.0.1"}
    client = FakeIncus(instances=[instance("a-dev", devices={"eth0": eth0})])
    filters = {"security.mac_filtering": "true", "security.ipv4_filtering": "true"}
    spec = {**SPEC, "devices": {"eth0": {**eth0, **filters}}}
    result = run("incus_instance", {"instances": [spec], "owner": "anklume", "wait": False},
                 client)
    assert entries(result) == [("instance", "a-dev", "change", "devices.eth0")]
    assert client.waves == []
    assert [w[0] for w in client.writes] == ["PUT"]


def test_instances_to_create_are_one_batch_of_operations() -> None:
    client = FakeIncus()
    specs = [{"name": f"a-{i}", "project": "a", "image": "debian"} for i in range(3)]
    result = run("incus_instance", {"instances": specs, "wait": False}, client)
    assert [e[2] for e in entries(result)] == ["create"] * 3
    assert client.waves == [[f"creating instance a-{i} in project a" for i in range(3)]]


def test_instance_orphans_by_project_and_name() -> None:
    """ADR-053: a machine moved to project b leaves an orphan in a; a bare name matches
    any project."""
    client = FakeIncus(instances=[instance("m", project="a"), instance("m", project="b"),
                                  instance("bare", project="c")])
    result = run("incus_instance", {"declared": ["b/m", "bare"], "report_orphans": True,
                                    "owner": "anklume", "wait": False}, client)
    assert result["orphans"] == ["a/m"]
    assert result["plan"] == [{"kind": "instance", "name": "m", "action": "orphan",
                               "project": "a"}]


def test_protected_orphan_is_kept_on_prune_and_a_free_one_removed() -> None:
    free = instance("free", status="Stopped")
    free["config"]["security.protection.delete"] = "false"
    client = FakeIncus(instances=[instance("kept"), free])
    result = run("incus_instance", {"state": "pruned", "owner": "anklume"}, client)
    assert entries(result) == [("instance", "free", "remove"), ("instance", "kept", "keep")]
    assert "instance kept kept: it is protected" in result["warnings"][0]
    assert client.waves == [["deleting instance free"]]  # stopped already: no stop


def test_absent_with_force_lifts_the_protection_then_stops_and_deletes() -> None:
    client = FakeIncus(instances=[instance("a-dev")])
    result = run("incus_instance", {"instances": [SPEC], "state": "absent", "force": True,
                                    "owner": "anklume"}, client)
    assert entries(result) == [("instance", "a-dev", "remove")]
    assert client.writes[0] == ("PATCH", "/1.0/instances/a-dev", "a",
                                {"config": {"security.protection.delete": "false"}})
    assert client.waves == [["stopping instance a-dev"], ["deleting instance a-dev"]]
