"""The path every new user takes (issue: a first edit of infra.yml broke `make apply`).

A lab tree starts from the shipped infra.yml (renamed to the test's own names: domains
``t9*``, owner ``t9user``, 10.109.x.0/24, nft table ``anklumet9``), synced and applied.
Then, in that same tree with its generated files, the user replaces infra.yml with a
description of their own that keeps one domain, removes a machine, moves another one to a
different domain, snapshots, stops an instance by hand and destroys. Every run must act on
declared machines only, report the rest as orphans, and never end in a module
deserialization error.

Own lab: the sequence of infra.yml files is the test: the shipped one (owner t9user) applied,
then replaced in the same tree by the user's own, edited (a machine removed, one moved), pruned,
snapshotted, stopped and destroyed with FORCE=1; no other module's lab goes through it or would
survive it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, recap, run, shipped_as_lab
from tests.integration.reconcile_lab import all_instances, cleanup, ipv4

OWNER = "t9user"
PREFIX = "t9"
BASE = "10.109"
NFT_TABLE = "anklumet9"
RENAME = {"admin": "t9adm", "perso": "t9per", "pro": "t9pro", "homelab": "t9lab"}
ADM = "t9-adm-ansible"
LOST = "deserialization"
ORPHAN = "? instance {1} in project {0} (orphan: no longer in infra.yml)"


def own_infra(shipped: dict[str, Any]) -> dict[str, Any]:
    """The user's own description: keeps the admin domain, two new domains."""
    doc = copy.deepcopy(shipped)
    adm = doc["domains"][RENAME["admin"]]

    def machine(ip: str) -> dict[str, Any]:
        return {"type": "lxc", "ip": ip, "roles": ["base_system"]}

    doc["domains"] = {
        RENAME["admin"]: adm,
        "t9dev": {"description": "work", "subnet_id": 5, "ephemeral": False, "machines": {
            "t9-dev-a": machine(f"{BASE}.5.10"), "t9-dev-b": machine(f"{BASE}.5.11")}},
        "t9web": {"description": "throw-away", "subnet_id": 6, "ephemeral": True, "machines": {
            "t9-web-a": machine(f"{BASE}.6.10"), "t9-web-b": machine(f"{BASE}.6.11")}},
    }
    return doc


def edited_infra(own: dict[str, Any]) -> dict[str, Any]:
    """t9-dev-b removed from t9dev; t9-web-b moved from t9web to t9dev."""
    doc = copy.deepcopy(own)
    dev, web = doc["domains"]["t9dev"]["machines"], doc["domains"]["t9web"]["machines"]
    del dev["t9-dev-b"]
    dev["t9-web-b"] = {**web.pop("t9-web-b"), "ip": f"{BASE}.5.12"}
    return doc


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)
        self.outputs: dict[str, str] = {}
        self.states: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def write(self, doc: dict[str, Any]) -> None:
        (self.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def make(self, step: str, *args: str, rc: int = 0) -> str:
        code, out = lab_make(self.root, *args, timeout=600)
        self.outputs[step] = out
        assert code == rc, f"{step}: make {' '.join(args)} exited {code}, want {rc}:\n{out}"
        assert LOST not in out, f"{step}: {out}"
        self.states[step] = all_instances()
        return out

    def status(self, step: str, project: str, name: str) -> str | None:
        inst = self.states[step].get((project, name))
        return None if inst is None else str(inst.get("status"))


def snapshots(project: str, name: str) -> list[str]:
    out = run(["incus", "query", f"/1.0/instances/{name}/snapshots?project={project}"])
    return sorted(p.split("?")[0].rsplit("/", 1)[-1] for p in json.loads(out) or [])


@pytest.fixture(scope="module")
def tree(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    cleanup(PREFIX, NFT_TABLE)
    t = Tree(tmp_path_factory.mktemp("userpath"))
    # Provisioning kept to base_system: the test is about the path, not the admin tools.
    shipped = shipped_as_lab(PREFIX, OWNER, BASE, roles=["base_system"])
    try:
        t.write(shipped)
        t.make("first sync", "sync")
        allvars = t.root / "group_vars" / "all.yml"
        # Outside the managed section, as a user adds it: the lab's own nft table.
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        t.make("shipped apply", "apply")
        own = own_infra(shipped)
        t.write(own)
        t.make("own plan", "plan")
        t.make("own apply", "apply")
        t.make("own apply again", "apply")
        # A new domain on the subnet of a removed one whose bridge is still up: plan and
        # apply stop before any change and say what to do.
        clash = copy.deepcopy(own)
        clash["domains"]["t9new"] = {"subnet_id": 1, "ephemeral": True, "machines": {
            "t9-new": {"type": "lxc", "ip": f"{BASE}.1.10"}}}
        t.write(clash)
        t.make("clash plan", "plan", rc=2)
        t.make("clash apply", "apply", rc=2)
        t.write(edited_infra(own))
        t.make("edited apply", "apply")
        t.make("edited prune", "apply", "PRUNE=1")
        t.make("edited apply again", "apply")
        yield t
    finally:
        cleanup(PREFIX, NFT_TABLE)


def test_own_infra_yml_in_a_synced_tree_plans_and_applies(tree: Tree) -> None:
    plan = tree.outputs["own plan"]
    for old in ("t9per", "t9pro", "t9lab"):
        assert f"removed from the inventory: inventory/{old}.yml" in plan, plan
        assert f"orphan: group_vars/{old}.yml (domain {old}, protected" in plan, plan
    assert "orphan: host_vars/t9-pro-dev.yml (machine t9-pro-dev, protected: use FORCE=1 " \
           "with make sync-clean)" in plan
    assert sorted(p.name for p in (tree.root / "inventory").iterdir()) == [
        "t9adm.yml", "t9dev.yml", "t9web.yml"]
    applied = recap(tree.outputs["own apply"])
    assert sorted(applied) == [ADM, "t9-dev-a", "t9-dev-b", "t9-web-a", "t9-web-b"]
    assert applied["t9-dev-a"] > 0
    for project, name in (("t9dev", "t9-dev-a"), ("t9web", "t9-web-b"), ("t9adm", ADM)):
        assert tree.status("own apply", project, name) == "Running"
    # The old domains' instances are protected orphans: reported, kept, never provisioned.
    assert tree.status("own apply", "t9pro", "t9-pro-dev") == "Running"
    assert ORPHAN.format("t9pro", "t9-pro-dev") in tree.outputs["own apply"]


def test_a_subnet_still_held_by_a_removed_domain_stops_before_any_change(tree: Tree) -> None:
    line = (f"network net-t9new: its subnet {BASE}.1.0/24 overlaps {BASE}.1.0/24 of the "
            "existing bridge net-t9per: give the domain another subnet_id")
    for step in ("clash plan", "clash apply"):
        assert line in tree.outputs[step], tree.outputs[step]
    assert "apply: 0 created, 0 changed, 0 removed" in tree.outputs["clash apply"]
    assert not any(p == "t9new" for p, _ in tree.states["clash apply"])


def test_second_apply_of_the_own_infra_changes_nothing(tree: Tree) -> None:
    out = tree.outputs["own apply again"]
    again = recap(out)
    assert again and set(again.values()) == {0}, out
    # ADR-082: nothing drifted, so the provision play matched no host.
    assert "PLAY [Provision phase - apply each instance's roles inside it] " \
        "*****************\nskipping: no hosts matched" in out, out


def test_removed_and_moved_machines_converge(tree: Tree) -> None:
    out = tree.outputs["edited apply"]
    # The removed machine is no host any more; the moved one is provisioned (ADR-082: the
    # provision play runs on the machines with something to do).
    assert "t9-dev-b" not in recap(out) and recap(out)["t9-web-b"] > 0, out
    # The moved machine is created in its new domain's project, at its new address ...
    moved = tree.states["edited apply"][("t9dev", "t9-web-b")]
    assert moved["status"] == "Running" and f"{BASE}.5.12" in ipv4(moved)
    # ... and its old instance is an orphan: reported, kept until PRUNE=1 (ephemeral domain).
    assert ORPHAN.format("t9web", "t9-web-b") in out
    assert tree.status("edited apply", "t9web", "t9-web-b") == "Running"
    assert tree.status("edited prune", "t9web", "t9-web-b") is None
    # The removed machine of a protected domain is kept, never deleted silently.
    assert ORPHAN.format("t9dev", "t9-dev-b") in out
    assert tree.status("edited prune", "t9dev", "t9-dev-b") == "Running"
    assert set(recap(tree.outputs["edited apply again"]).values()) == {0}


def test_snapshot_and_restore_touch_only_declared_instances(tree: Tree) -> None:
    tree.make("snapshot", "snapshot", "NAME=t9s")
    declared = [("t9adm", ADM), ("t9dev", "t9-dev-a"), ("t9dev", "t9-web-b"),
                ("t9web", "t9-web-a")]
    for project, name in declared:
        assert snapshots(project, name) == ["t9s"], name
    for project, name in (("t9dev", "t9-dev-b"), ("t9pro", "t9-pro-dev")):
        assert snapshots(project, name) == [], name
    tree.make("restore", "restore", "NAME=t9s")
    assert tree.status("restore", "t9dev", "t9-dev-a") == "Running"


def test_a_stopped_instance_is_named_then_started_again(tree: Tree) -> None:
    run(["incus", "stop", "--force", "--project", "t9dev", "t9-dev-a"])
    out = tree.make("provision stopped", "apply", "TAGS=provision", rc=2)
    assert ("t9-dev-a: instance t9-dev-a (project t9dev) is Stopped: run `make apply` (it "
            "starts it) or `incus start --project t9dev t9-dev-a`") in out
    # Only the stopped machine stops; the others had nothing to provision (ADR-082).
    assert "fatal: [t9-dev-a]" in out and "fatal: [t9-web-a]" not in out, out
    assert set(recap(out).values()) == {0}, out
    tree.make("apply stopped", "apply")
    assert tree.status("apply stopped", "t9dev", "t9-dev-a") == "Running"


def test_destroy_touches_only_declared_instances(tree: Tree) -> None:
    tree.make("destroy", "destroy", "FORCE=1")
    for project, name in (("t9adm", ADM), ("t9dev", "t9-dev-a"), ("t9dev", "t9-web-b"),
                          ("t9web", "t9-web-a")):
        assert tree.status("destroy", project, name) is None, name
    for project, name in (("t9dev", "t9-dev-b"), ("t9pro", "t9-pro-dev"),
                          ("t9per", "t9-per-desktop"), ("t9lab", "t9-lab-llm")):
        assert tree.status("destroy", project, name) == "Running", name
