"""The instances role's record of the instances it saw ready (ADR-097): which reads a run
makes, and what the record keeps.

FakeIncus (tests/unit/fake_incus.py) stands in for the daemon: what is under test is the
module's choice between the list without the state and the list with it, not Incus. The
real daemon's side (the record written by an apply, a restarted machine waited for again)
is tested in tests/integration/test_reconcile.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.fake_incus import FakeIncus, managed, run

pytestmark = pytest.mark.unit

STARTED = "2026-12-07T07:58:45.220191058Z"


def instance(name: str, ip: str, started: str = STARTED) -> dict:
    return {"name": name, "project": "a", "status": "Running", "type": "container",
            "profiles": ["default"], "description": "", "devices": {},
            "last_used_at": started, "config": managed(),
            "state": {"network": {"eth0": {"addresses": [
                {"family": "inet", "scope": "global", "address": ip}]}}}}


def spec(name: str, ip: str) -> dict:
    return {"name": name, "project": "a", "ip": ip}


def apply(record: Path, client: FakeIncus, *specs: dict) -> dict:
    return run("incus_instance", {"instances": list(specs), "owner": "anklume",
                                  "record": str(record)}, client)


def test_without_a_record_every_run_reads_the_state(tmp_path: Path) -> None:
    client = FakeIncus(instances=[instance("a-one", "10.9.0.10")])
    result = run("incus_instance", {"instances": [spec("a-one", "10.9.0.10")],
                                    "owner": "anklume"}, client)
    assert client.state_reads == [True]
    assert result["addresses"]["a-one"] == ["10.9.0.10"]


def test_first_run_reads_the_state_then_keeps_what_it_saw(tmp_path: Path) -> None:
    record = tmp_path / "ready.json"
    client = FakeIncus(instances=[instance("a-one", "10.9.0.10")])
    apply(record, client, spec("a-one", "10.9.0.10"))
    assert client.state_reads == [False, True]  # nothing recorded yet: the state is read
    assert json.loads(record.read_text()) == {"local:a/a-one": {
        "started": STARTED, "ip": "10.9.0.10", "addresses": ["10.9.0.10"]}}


def test_an_instance_seen_ready_since_its_start_is_not_read_again(tmp_path: Path) -> None:
    record = tmp_path / "ready.json"
    apply(record, FakeIncus(instances=[instance("a-one", "10.9.0.10")]),
          spec("a-one", "10.9.0.10"))
    client = FakeIncus(instances=[instance("a-one", "10.9.0.10")])
    result = apply(record, client, spec("a-one", "10.9.0.10"))
    assert client.state_reads == [False] and not result["changed"]
    assert result["addresses"] == {"a-one": ["10.9.0.10"]}


@pytest.mark.parametrize("change", ["restarted", "new address", "record unreadable"])
def test_anything_else_reads_the_state_and_waits(tmp_path: Path, change: str) -> None:
    """Incus started the instance anew, the declared address is another one, or the record
    cannot be read: the state is read, as without a record."""
    record = tmp_path / "ready.json"
    apply(record, FakeIncus(instances=[instance("a-one", "10.9.0.10")]),
          spec("a-one", "10.9.0.10"))
    started, ip = STARTED, "10.9.0.10"
    if change == "restarted":
        started = "2026-12-07T09:00:00.000000000Z"
    elif change == "new address":
        ip = "10.9.0.11"
    else:
        record.write_text("{not json")
    client = FakeIncus(instances=[instance("a-one", ip, started)])
    apply(record, client, spec("a-one", ip))
    assert client.state_reads == [False, True]
    assert json.loads(record.read_text())["local:a/a-one"] == {
        "started": started, "ip": ip, "addresses": [ip]}


def test_the_record_forgets_instances_gone_and_keeps_other_remotes(tmp_path: Path) -> None:
    record = tmp_path / "ready.json"
    record.write_text(json.dumps({
        "local:a/a-gone": {"started": STARTED, "ip": "", "addresses": []},
        "far:a/a-far": {"started": STARTED, "ip": "", "addresses": []}}))
    apply(record, FakeIncus(instances=[instance("a-one", "10.9.0.10")]),
          spec("a-one", "10.9.0.10"))
    assert sorted(json.loads(record.read_text())) == ["far:a/a-far", "local:a/a-one"]

