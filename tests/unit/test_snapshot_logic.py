"""incus_snapshot's decisions on FakeIncus: plan entries, failures before any change, and
its operations started and awaited together, one batch per wave (ADR-022, ADR-056)."""

from __future__ import annotations

import pytest

from tests.unit.fake_incus import FakeIncus, run

pytestmark = pytest.mark.unit


def inst(name: str, project: str = "a", snaps: tuple[str, ...] = ()) -> dict:
    return {"name": name, "project": project, "status": "Running",
            "snapshots": [{"name": f"{name}/{s}", "created_at": f"2026-01-0{i + 1}T00:00:00Z"}
                          for i, s in enumerate(snaps)]}


def client() -> FakeIncus:
    return FakeIncus(instances=[inst("a-1", snaps=("s1",)), inst("a-2"), inst("a-3")])


TARGETS = [{"name": "a-1", "project": "a"}, {"name": "a-2", "project": "a"},
           {"name": "a-3", "project": "a"}]


def test_present_creates_where_missing_in_one_batch() -> None:
    c = client()
    result = run("incus_snapshot", {"instances": TARGETS, "name": "s1"}, c)
    assert result["changed"]
    assert result["plan"] == [
        {"kind": "snapshot", "name": "a-2/s1", "action": "create", "project": "a"},
        {"kind": "snapshot", "name": "a-3/s1", "action": "create", "project": "a"}]
    assert c.waves == [["creating snapshot 's1' of instance 'a-2' (project a)",
                        "creating snapshot 's1' of instance 'a-3' (project a)"]]
    assert {"plan", "snapshots", "incus_calls"} <= set(result)
    assert "results" not in result and "api_calls" not in result


def test_force_replaces_deleting_first_then_creating() -> None:
    c = client()
    result = run("incus_snapshot", {"instances": TARGETS[:1], "name": "s1", "force": True}, c)
    assert [e["action"] for e in result["plan"]] == ["replace"]
    assert [len(w) for w in c.waves] == [1, 1]
    assert c.waves[0][0].startswith("deleting") and c.waves[1][0].startswith("creating")


def test_restore_of_a_missing_snapshot_fails_before_any_change() -> None:
    c = client()
    result = run("incus_snapshot", {"instances": TARGETS, "name": "s1", "state": "restored"}, c)
    assert result["failed"] and c.writes == []
    assert result["msg"] == (
        "incus_snapshot: cannot restore snapshot 's1': instance 'a-2' (project a) has no "
        "snapshot 's1'; instance 'a-3' (project a) has no snapshot 's1' "
        "(see: make snapshot-list)")


def test_delete_and_diff_name_the_snapshots_before_and_after() -> None:
    c = client()
    result = run("incus_snapshot", {"instances": TARGETS[:1], "name": "s1", "state": "absent"},
                 c, check_mode=True)
    assert result["plan"] == [{"kind": "snapshot", "name": "a-1/s1", "action": "remove",
                               "project": "a"}]
    assert c.writes == []
    assert result["diff"]["before"] == "a/a-1:\n  - s1\n"
    assert result["diff"]["after"] == "a/a-1:\n  []\n"


def test_unknown_instance_fails_except_when_listing() -> None:
    targets = [{"name": "nope"}]
    result = run("incus_snapshot", {"instances": targets, "name": "s1"}, client())
    assert result["failed"]
    assert result["msg"] == ("incus_snapshot: instance not found in Incus: nope (project "
                             "default) (create it first: make apply)")
    listed = run("incus_snapshot", {"instances": TARGETS + targets, "state": "listed"}, client())
    assert not listed.get("failed") and listed["plan"] == []
    assert [(r["instance"], r["name"]) for r in listed["snapshots"]] == [("a-1", "s1")]


def test_a_state_that_acts_needs_a_name() -> None:
    result = run("incus_snapshot", {"instances": TARGETS, "state": "absent"}, client())
    assert result["failed"] and result["msg"] == "incus_snapshot: state=absent needs a name"
