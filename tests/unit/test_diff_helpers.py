"""The shared diff helpers (module_utils/incus_client.py) and the plan summary that reads
the modules' results (plugins/callback/anklume_plan.py, ADR-056)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit

IC = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_client")
PLAN = importlib.import_module("ansible_collections.anklume.incus.plugins.callback.anklume_plan")


def test_stringify_writes_values_as_incus_stores_them() -> None:
    assert IC.stringify({"a": True, "b": False, "c": None, "d": 3, "e": "x"}) == {
        "a": "true", "b": "false", "c": "", "d": "3", "e": "x"}


def test_config_changes_sets_what_differs_and_removes_owned_keys_only() -> None:
    current = {"k": "1", "same": "s", "user.anklume.old": "x", "volatile.y": "z"}
    wanted = {"k": "2", "same": "s", "new": "n"}
    changed, removed = IC.config_changes(current, wanted, ("user.anklume.",))
    assert changed == ["k", "new"]
    assert removed == ["user.anklume.old"]


def test_config_changes_with_every_key_owned_removes_all_undeclared() -> None:
    assert IC.config_changes({"a": "1", "b": "2"}, {"a": "1"}, ("",)) == ([], ["b"])


def test_devices_changes_names_added_removed_and_changed_devices() -> None:
    current = {"eth0": {"type": "nic", "mtu": 1500}, "old": {"type": "disk"}}
    wanted = {"eth0": {"type": "nic", "mtu": "1500"}, "gpu": {"type": "gpu"}}
    assert IC.devices_changes(current, wanted) == ["devices.gpu", "devices.old"]


def test_devices_changes_sees_an_emptied_device() -> None:
    assert IC.devices_changes({"x": {}}, {}) == ["devices.x"]


def test_diff_entry_renders_both_sides() -> None:
    block = IC.diff_entry("network n", None, {"config": {"a": "1"}})
    assert block["before"] == "" and '"a": "1"' in block["after"]
    assert block["before_header"] == block["after_header"] == "network n"


# -- the plan summary --------------------------------------------------------------------
def summary(results: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(PLAN.context, "CLIARGS", {"check": True})
    lines: list[str] = []
    cb = PLAN.CallbackModule()
    monkeypatch.setattr(cb._display, "display", lambda msg, *a, **k: lines.append(msg))
    cb.v2_playbook_on_start(SimpleNamespace(_file_name="/x/site.yml"))
    for res in results:
        cb.v2_runner_on_ok(SimpleNamespace(_result=res))
    cb.v2_playbook_on_stats(None)
    return [line for line in lines if line]


def test_summary_lines_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = summary([
        {"plan": [{"kind": "network", "name": "net-a", "action": "create"},
                  {"kind": "network", "name": "net-b", "action": "change",
                   "keys": ["ipv4.nat"]}]},
        {"plan": [{"kind": "instance", "name": "m", "action": "orphan", "project": "old"},
                  {"kind": "profile", "name": "a/gpu", "action": "orphan", "project": "a"}]},
    ], monkeypatch)
    assert lines == [
        "plan: + network net-a",
        "plan: ~ network net-b: ipv4.nat",
        "plan: ? instance m in project old (orphan: no longer in infra.yml)",
        "plan: ? profile a/gpu (orphan: no longer in infra.yml)",
        "plan: 1 to create, 1 to change, 0 to remove, 2 orphans (PRUNE=1 removes)",
    ]


def test_summary_names_the_image_of_an_instance_to_create(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    lines = summary([{"plan": [{"kind": "instance", "name": "m", "action": "create",
                                "project": "a", "image": "anklume/debian-12-gui"},
                               {"kind": "instance", "name": "n", "action": "create",
                                "project": "a"}]}], monkeypatch)
    assert lines[:2] == ["plan: + instance m (image anklume/debian-12-gui)",
                         "plan: + instance n"]


def test_summary_drops_an_orphan_removed_in_the_same_run(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"kind": "profile", "name": "a/gpu", "project": "a"}
    lines = summary([{"plan": [{**entry, "action": "orphan"}]},
                     {"plan": [{**entry, "action": "remove"}]}], monkeypatch)
    assert lines == ["plan: - profile a/gpu",
                     "plan: 0 to create, 0 to change, 1 to remove, 0 orphans (PRUNE=1 removes)"]
