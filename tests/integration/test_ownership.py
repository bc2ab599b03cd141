"""Ownership (ADR-021) and per-domain NAT on the real Incus daemon.

Two lab trees declare the same domains t7a and t7b (10.160.x): lab A as anklume project
``t7own``, lab B as ``t7other``. Once A has applied, B's plan, apply and destroy must stop
before touching anything, one line per object. A bridge without our marker under a declared
name stops the run too, until it is adopted explicitly. Domain t7a says ``nat: false``: its
bridge has ipv4.nat=false and a second apply changes nothing.

The labs skip the nftables tag (the host table is another test's business) and, should it run
anyway, point it at a table and file of their own (``inet anklumet7``), never ``anklume``.
Tests run in file order, each from the state the previous one left.

Own lab: it needs two trees (owners t7own and t7other) declaring the same domains, one with nat:
false; its tests drift a bridge, hand a bridge to the other owner, adopt an unmarked bridge and
end with destroy FORCE=1, which no other module's lab has or would survive.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import create_network, lab_make, lab_tree, recap
from tests.integration.reconcile_lab import (
    all_instances,
    cleanup,
    incus_query,
    summary,
)

pytestmark = pytest.mark.incus

PREFIX = "t7"
BASE = "10.160"
NFT_TABLE = "anklumet7"
OWNER_A, OWNER_B = "t7own", "t7other"
BOX = f"{PREFIX}a-box"


def domains() -> dict[str, dict[str, Any]]:
    return {
        f"{PREFIX}a": {
            "description": "sandbox, no NAT", "subnet_id": 0, "ephemeral": True, "nat": False,
            "profiles": {"nest": {"config": {"security.nesting": "true"}}},
            "machines": {BOX: {"type": "lxc", "ip": f"{BASE}.0.10",
                               "profiles": ["default", "nest"]}},
        },
        f"{PREFIX}b": {"description": "NAT left to the default", "subnet_id": 1,
                       "ephemeral": True},
    }


class OwnLab:
    """A throw-away tree (see reconcile_lab.Lab) with its own owner and domains."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root, self.owner = lab_tree(root), owner
        self.domains = domains()

    def write(self) -> None:
        doc = {"project_name": self.owner,
               "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                          "admin_domain": ""},
               "domains": self.domains}
        (self.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        rc, out = self.make("sync")
        assert rc == 0, out
        allvars = self.root / "group_vars" / "all.yml"
        text = allvars.read_text()
        if "incus_nftables_table" not in text:
            allvars.write_text(text + f"incus_nftables_table: {NFT_TABLE}\n"
                               f"incus_nftables_file: {self.root}/{NFT_TABLE}.nft\n")

    def make(self, *args: str, timeout: float = 300) -> tuple[int, str]:
        return lab_make(self.root, *args, timeout=timeout, ANSIBLE_SKIP_TAGS="nftables")

    def ok(self, *args: str) -> str:
        rc, out = self.make(*args)
        assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out}"
        return out


def incus(*args: str) -> str:
    return subprocess.run(["incus", *args], capture_output=True, text=True, check=True).stdout


def snapshot() -> dict[str, Any]:
    """Everything of ours that a conflicting run must leave exactly as it was."""
    nets = {n["name"]: (n["config"], n["description"])
            for n in incus_query("/1.0/networks?recursion=1") or []
            if n["name"].startswith(f"net-{PREFIX}")}
    projects = {p["name"]: p["config"] for p in incus_query("/1.0/projects?recursion=1") or []
                if p["name"].startswith(PREFIX)}
    profiles = {(p["project"], p["name"]): (p["config"], p["devices"])
                for p in incus_query("/1.0/profiles?all-projects=true&recursion=1") or []
                if p["project"].startswith(PREFIX)}
    insts = {k: ({c: v for c, v in i["config"].items() if not c.startswith("volatile.")},
                 i["devices"], i["profiles"], i["status"])
             for k, i in all_instances().items() if k[0].startswith(PREFIX)}
    return {"networks": nets, "projects": projects, "profiles": profiles, "instances": insts}


def conflict_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(("plan: x ", "apply: x "))]


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OwnLab, OwnLab]]:
    cleanup(PREFIX, NFT_TABLE)
    a = OwnLab(Path(tmp_path_factory.mktemp("own-a")), OWNER_A)
    b = OwnLab(Path(tmp_path_factory.mktemp("own-b")), OWNER_B)
    a.write()
    b.write()
    yield a, b
    cleanup(PREFIX, NFT_TABLE)


def test_nat_false_domain_has_no_nat_and_a_second_apply_changes_nothing(
        labs: tuple[OwnLab, OwnLab]) -> None:
    a, _ = labs
    a.ok("apply")
    assert incus_query(f"/1.0/networks/net-{PREFIX}a")["config"]["ipv4.nat"] == "false"
    assert incus_query(f"/1.0/networks/net-{PREFIX}b")["config"]["ipv4.nat"] == "true"
    assert all_instances()[(f"{PREFIX}a", BOX)]["status"] == "Running"
    again = a.ok("apply")
    changed = recap(again)
    assert changed and all(v == 0 for v in changed.values()), again
    assert summary(a.ok("plan")).startswith("plan: 0 to create, 0 to change, 0 to remove")
    # Drift on the declared key is planned and repaired.
    incus("network", "set", f"net-{PREFIX}a", "ipv4.nat=true")
    plan = a.ok("plan")
    assert f"~ network net-{PREFIX}a: ipv4.nat" in plan, plan
    a.ok("apply")
    assert incus_query(f"/1.0/networks/net-{PREFIX}a")["config"]["ipv4.nat"] == "false"


def test_another_owner_stops_plan_apply_and_destroy_before_any_change(
        labs: tuple[OwnLab, OwnLab]) -> None:
    _, b = labs
    before = snapshot()
    expected = {f"network net-{PREFIX}a", f"network net-{PREFIX}b", f"project {PREFIX}a",
                f"project {PREFIX}b", f"profile {PREFIX}a/nest",
                f"instance {BOX} (project {PREFIX}a)"}
    for target in ("plan", "apply", "destroy"):
        rc, out = b.make(target)
        assert rc != 0, f"make {target} as {OWNER_B} succeeded:\n{out}"
        lines = conflict_lines(out)
        named = {obj for obj in expected for ln in lines if obj + " belongs to" in ln}
        assert named == expected, f"make {target}:\n{out}"
        assert len(lines) == len(expected), out
        for ln in lines:
            assert f"belongs to anklume project '{OWNER_A}', not '{OWNER_B}'" in ln, ln
            assert "rename the" in ln and f"user.anklume.owner={OWNER_B}" in ln, ln
        assert f"incus network set net-{PREFIX}a user.anklume.owner={OWNER_B}" in out, out
        label = "plan" if target == "plan" else "apply"
        assert "6 conflicts" in summary(out, label), out
        assert snapshot() == before, f"make {target} changed something:\n{out}"
    # An object handed over to the other owner stops its old owner the same way.
    incus("network", "set", f"net-{PREFIX}b", f"user.anklume.owner={OWNER_B}")
    a = labs[0]
    rc, out = a.make("plan")
    assert rc != 0 and len(conflict_lines(out)) == 1, out
    assert f"network net-{PREFIX}b belongs to anklume project '{OWNER_B}', not " \
           f"'{OWNER_A}'" in out, out
    incus("network", "set", f"net-{PREFIX}b", f"user.anklume.owner={OWNER_A}")
    assert summary(a.ok("plan")).startswith("plan: 0 to create, 0 to change")


def test_unmarked_declared_bridge_stops_the_run_until_adopted(
        labs: tuple[OwnLab, OwnLab]) -> None:
    a, _ = labs
    net = f"net-{PREFIX}c"
    create_network(net, f"ipv4.address={BASE}.2.254/24", "ipv6.address=none", "ipv4.nat=true")
    a.domains[f"{PREFIX}c"] = {"subnet_id": 2, "ephemeral": True}
    a.write()
    before = snapshot()
    for target in ("plan", "apply"):
        rc, out = a.make(target)
        assert rc != 0, out
        lines = conflict_lines(out)
        assert len(lines) == 1, out
        assert f"network {net} exists without the anklume marker" in lines[0], out
        assert (f"incus network set {net} user.anklume.managed=true "
                f"user.anklume.owner={OWNER_A}") in lines[0], out
        assert snapshot() == before, out
    assert "ipv4.dhcp.ranges" not in incus_query(f"/1.0/networks/{net}")["config"]
    incus("network", "set", net, "user.anklume.managed=true", f"user.anklume.owner={OWNER_A}")
    out = a.ok("apply")
    cfg = incus_query(f"/1.0/networks/{net}")["config"]
    assert cfg["ipv4.dhcp.ranges"] == f"{BASE}.2.100-{BASE}.2.199", out
    assert f"{PREFIX}c" in {p["name"] for p in incus_query("/1.0/projects?recursion=1")}


def test_own_destroy_removes_everything(labs: tuple[OwnLab, OwnLab]) -> None:
    a, _ = labs
    a.ok("destroy", "FORCE=1")
    assert not [k for k in all_instances() if k[0].startswith(PREFIX)]
    assert not [n for n in incus_query("/1.0/networks?recursion=1")
                if n["name"].startswith(f"net-{PREFIX}")]
