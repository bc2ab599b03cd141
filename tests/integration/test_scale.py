"""Issue 19: thirty instances through the Makefile, every step succeeds and reports truly.

A throw-away AnKLuMe tree (owner ``t19scale``, domains ``t19a``..``t19f`` with five
containers each, 10.190.x.0/24, nft table ``anklumet19``): a cold ``make apply
TAGS=infra`` (no provisioning roles declared), a second one with nothing to do, then
``make snapshot``, ``make restore`` and ``make destroy FORCE=1``. Before ADR-022 the
cold apply, the snapshot and the restore failed on lost operations ("Operation not
found") although Incus had done the work.

The tests share the lab and run in file order. Nothing here is timed: ``make bench``
measures (scripts/bench_scale.py).

Own lab: the lost-operation failure needs thirty containers in six domains, more than any other
lab, and the tests snapshot, restore and finally destroy all thirty with FORCE=1.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, recap
from tests.integration.reconcile_lab import all_instances, cleanup, incus_query, ipv4

PREFIX, OWNER, NFT_TABLE, BASE = "t19", "t19scale", "anklumet19", "10.190"
DOMAINS, PER = 6, 5
MACHINES = {f"{PREFIX}{chr(97 + d)}-m{m}": (f"{PREFIX}{chr(97 + d)}", f"{BASE}.{d}.{10 + m}")
            for d in range(DOMAINS) for m in range(PER)}
LOST = "Operation not found"


def infra() -> dict[str, Any]:
    domains: dict[str, Any] = {}
    for name, (domain, ip) in MACHINES.items():
        d = domains.setdefault(domain, {"description": "issue 19 scale test",
                                        "subnet_id": ord(domain[-1]) - 97, "ephemeral": False,
                                        "machines": {}})
        d["machines"][name] = {"type": "lxc", "ip": ip}
    return {"project_name": OWNER,
            "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                       "admin_domain": ""},
            "domains": domains}


def wipe() -> None:
    cleanup(prefix=PREFIX, nft_table=NFT_TABLE)


def make(root: Path, *args: str, timeout: float = 900) -> str:
    rc, out = lab_make(root, *args, timeout=timeout)
    assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out}"
    assert LOST not in out, out
    return out


def ours() -> dict[str, dict[str, Any]]:
    return {name: inst for (project, name), inst in all_instances().items()
            if project.startswith(PREFIX)}


def snapshots(name: str) -> set[str]:
    project = MACHINES[name][0]
    items = incus_query(f"/1.0/instances/{name}/snapshots?project={project}")
    return {str(s).split("?")[0].rsplit("/", 1)[-1] for s in items or []}


def sh(name: str, script: str) -> str:
    return subprocess.run(["incus", "exec", name, "--project", MACHINES[name][0], "--",
                           "sh", "-c", script], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    wipe()  # leftovers of an interrupted run
    root = lab_tree(tmp_path_factory.mktemp("scale"))
    (root / "infra.yml").write_text(yaml.safe_dump(infra(), sort_keys=False))
    try:
        make(root, "sync")
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        yield root
    finally:
        wipe()


def test_cold_apply_creates_all_thirty(lab: Path) -> None:
    out = make(lab, "apply", "TAGS=infra")
    created = set(re.findall(r"^apply: \+ instance (\S+) \(image \S+\)$", out, re.MULTILINE))
    assert created == set(MACHINES), out
    assert "incus_instance: created 8/30" in out, out  # a progress line per batch
    insts = ours()
    assert set(insts) == set(MACHINES)
    for name, (_, ip) in MACHINES.items():
        assert insts[name]["status"] == "Running", name
        assert ip in ipv4(insts[name]), (name, ipv4(insts[name]))


def test_second_apply_changes_nothing(lab: Path) -> None:
    out = make(lab, "apply", "TAGS=infra")
    assert recap(out) and set(recap(out).values()) == {0}, out
    assert "apply: 0 created, 0 changed, 0 removed" in out, out


def test_snapshot_of_all_thirty(lab: Path) -> None:
    out = make(lab, "snapshot", "NAME=s19")
    assert recap(out).get("localhost") == 1, out
    assert "incus_snapshot: created 30/30" in out, out
    for name in MACHINES:
        assert "s19" in snapshots(name), name
    # Again: nothing to do, and said so.
    out = make(lab, "snapshot", "NAME=s19")
    assert recap(out).get("localhost") == 0, out


def test_restore_of_all_thirty(lab: Path) -> None:
    touched = ["t19a-m0", "t19c-m2", "t19f-m4"]
    for name in touched:
        sh(name, "echo after > /root/t19-after")
    out = make(lab, "restore", "NAME=s19", "PARALLEL=4")
    assert recap(out).get("localhost") == 1, out
    assert "incus_snapshot: restored 28/30" in out, out  # batches of 4
    for name in touched:
        assert sh(name, "test -e /root/t19-after && echo kept || echo gone") == "gone\n", name
    insts = ours()
    assert all(insts[n]["status"] == "Running" for n in MACHINES)


def test_destroy_removes_all_thirty(lab: Path) -> None:
    out = make(lab, "destroy", "FORCE=1")
    removed = set(re.findall(r"^apply: - instance (\S+)$", out, re.MULTILINE))
    assert removed == set(MACHINES), out
    assert ours() == {}
