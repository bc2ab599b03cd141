"""Snapshots through the Makefile (Phase 4) on real Incus instances.

A throw-away AnKLuMe tree (owner ``t5snap``, domains ``t5b`` and ``t5c``, 10.121.2-3.0/24)
links the repository's Makefile, playbooks, roles and plugins; ``make apply TAGS=infra``
creates the instances, then every check goes through ``make snapshot``, ``make restore``,
``make snapshot-delete`` and ``make snapshot-list`` in that tree.

Own lab: it needs snapshots_schedule and snapshots_expiry declared on a domain and on one
machine (t5b) and a second domain (t5c) that must stay untouched; its tests restore,
force-replace and delete snapshots and assert exact snapshot names and changed counts, which
another module's snapshots or restores would upset.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.incus_helpers import REPO, delete_by_prefix, lab_make, lab_tree, query, run

OWNER = "t5snap"
DOM_B, DOM_C = "t5b", "t5c"
B1, B2, C1 = "t5-snap-b1", "t5-snap-b2", "t5-snap-c1"
PROJECT = {B1: DOM_B, B2: DOM_B, C1: DOM_C}
NFT_TABLE = "anklumet5s"

INFRA = {
    "project_name": OWNER,
    "global": {
        "base_subnet": "10.121",
        "default_os_image": "anklume/debian-12",
        "admin_domain": "",
    },
    "domains": {
        DOM_B: {
            "description": "snapshot test, protected",
            "subnet_id": 2,
            "ephemeral": False,
            "snapshots_schedule": "0 3 * * *",
            "snapshots_expiry": "2w",
            "machines": {
                B1: {"type": "lxc", "ip": "10.121.2.10"},
                B2: {
                    "type": "lxc",
                    "ip": "10.121.2.11",
                    "snapshots_schedule": "@daily",
                    "snapshots_expiry": "3d",
                },
            },
        },
        DOM_C: {
            "description": "snapshot test, other domain",
            "subnet_id": 3,
            "ephemeral": True,
            "machines": {C1: {"type": "lxc", "ip": "10.121.3.10"}},
        },
    },
}


def cleanup() -> None:
    delete_by_prefix("t5-snap")
    delete_by_prefix(DOM_B)
    delete_by_prefix(DOM_C)
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, check=False)


def make(root: Path, *args: str, ok: bool = True, timeout: float = 300) -> str:
    rc, out = lab_make(root, *args, timeout=timeout)
    assert (rc == 0) == ok, f"make {' '.join(args)} rc={rc}:\n{out}"
    return out


def changed(output: str) -> int:
    line = next(ln for ln in output.splitlines() if ln.startswith("localhost") and " : ok=" in ln)
    return int(line.split("changed=")[1].split()[0])


def snapshots(name: str) -> dict[str, str]:
    """Snapshot name -> created_at, read straight from Incus."""
    items = query(f"/1.0/instances/{name}/snapshots?project={PROJECT[name]}&recursion=1")
    assert isinstance(items, list)
    return {str(s["name"]).rsplit("/", 1)[-1]: str(s["created_at"]) for s in items}


def sh(name: str, script: str) -> str:
    return run(["incus", "exec", name, "--project", PROJECT[name], "--", "sh", "-c", script])


def pull(name: str, path: str) -> bytes:
    return subprocess.run(
        ["incus", "file", "pull", "--project", PROJECT[name], f"{name}{path}", "-"],
        capture_output=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = lab_tree(tmp_path_factory.mktemp("snapshots"))
    (root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
    cleanup()
    try:
        make(root, "sync")
        # The isolation role (in the infra phase) must never rewrite the real `inet anklume`.
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        make(root, "apply", "TAGS=infra", timeout=420)
        yield root
    finally:
        cleanup()


def test_declared_schedules_become_incus_config(lab: Path) -> None:
    for name, schedule, expiry in ((B1, "0 3 * * *", "2w"), (B2, "@daily", "3d")):
        inst = query(f"/1.0/instances/{name}?project={DOM_B}")
        assert isinstance(inst, dict)
        assert inst["config"].get("snapshots.schedule") == schedule
        assert inst["config"].get("snapshots.expiry") == expiry
    inst = query(f"/1.0/instances/{C1}?project={DOM_C}")
    assert isinstance(inst, dict)
    assert "snapshots.schedule" not in inst["config"]


def test_round_trip_restores_the_original_bytes_on_a_protected_instance(lab: Path) -> None:
    inst = query(f"/1.0/instances/{B1}?project={DOM_B}")
    assert isinstance(inst, dict)
    assert inst["config"].get("security.protection.delete") == "true"
    sh(
        B1,
        "mkdir -p /srv/data && head -c 262144 /dev/urandom > /srv/data/blob.bin"
        " && printf 'hello\\n' > /srv/data/note.txt",
    )
    blob, note = pull(B1, "/srv/data/blob.bin"), pull(B1, "/srv/data/note.txt")
    make(lab, "snapshot", "NAME=rt", f"I={B1}")
    sh(
        B1,
        "head -c 1000 /dev/zero > /srv/data/blob.bin && rm /srv/data/note.txt"
        " && echo new > /srv/data/extra.txt",
    )
    assert hashlib.sha256(pull(B1, "/srv/data/blob.bin")).digest() != hashlib.sha256(blob).digest()
    out = make(lab, "restore", "NAME=rt", f"I={B1}")
    assert changed(out) == 1
    assert pull(B1, "/srv/data/blob.bin") == blob
    assert pull(B1, "/srv/data/note.txt") == note
    assert sh(B1, "ls /srv/data").split() == ["blob.bin", "note.txt"]
    # Deleting a protected instance's snapshot is allowed too.
    make(lab, "snapshot-delete", "NAME=rt", f"I={B1}")
    assert "rt" not in snapshots(B1)


def test_domain_snapshot_touches_only_that_domain(lab: Path) -> None:
    before_c = snapshots(C1)
    out = make(lab, "snapshot", "NAME=dom", f"DOMAIN={DOM_B}")
    assert changed(out) == 1
    assert "dom" in snapshots(B1) and "dom" in snapshots(B2)
    assert snapshots(C1) == before_c


def test_same_snapshot_again_reports_no_change_and_force_replaces(lab: Path) -> None:
    first = snapshots(B2)["dom"]
    out = make(lab, "snapshot", "NAME=dom", f"DOMAIN={DOM_B}")
    assert changed(out) == 0, out
    assert snapshots(B2)["dom"] == first
    out = make(lab, "snapshot", "NAME=dom", f"I={B2}", "FORCE=1")
    assert changed(out) == 1
    assert snapshots(B2)["dom"] != first


def test_check_mode_changes_nothing(lab: Path) -> None:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [
            str(lab / ".venv/bin/ansible-playbook"),
            "snapshot.yml",
            "--check",
            "--diff",
            "-e",
            "incus_snapshots_name=never",
            "-e",
            f"incus_snapshots_instance={C1}",
        ],
        cwd=lab,
        capture_output=True,
        text=True,
        check=False,
        env={**env, "ANSIBLE_PYTHON_INTERPRETER": str(REPO / ".venv/bin/python")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changed(proc.stdout) == 1
    assert "+  - never" in proc.stdout, proc.stdout
    assert "never" not in snapshots(C1)


def test_default_name_carries_a_timestamp(lab: Path) -> None:
    make(lab, "snapshot", f"I={C1}")
    names = [n for n in snapshots(C1) if re.fullmatch(r"anklume-\d{8}-\d{6}", n)]
    assert len(names) == 1, snapshots(C1)


def test_restore_or_delete_of_a_missing_snapshot_names_instance_and_snapshot(lab: Path) -> None:
    before = {n: snapshots(n) for n in PROJECT}
    for target in ("restore", "snapshot-delete"):
        out = make(lab, target, "NAME=ghost", f"DOMAIN={DOM_B}", ok=False)
        assert "ghost" in out and B1 in out and B2 in out, out
    assert make(lab, "restore", ok=False).count("NAME=") >= 1
    assert {n: snapshots(n) for n in PROJECT} == before


def test_unknown_domain_is_a_clear_error(lab: Path) -> None:
    out = make(lab, "snapshot", "NAME=x", "DOMAIN=nosuch", ok=False)
    assert "unknown domain DOMAIN=nosuch" in out


def test_list_is_a_table_of_instance_snapshot_date(lab: Path) -> None:
    out = make(lab, "snapshot-list")
    assert "INSTANCE" in out and "SNAPSHOT" in out and "DATE (UTC)" in out
    rows = [ln for ln in out.splitlines() if re.search(r"t5-snap-\S+\s+\S+\s+\d{4}-\d\d-\d\d ", ln)]
    listed = {tuple(ln.strip(" -'\"").split()[:2]) for ln in rows}
    assert (B1, "dom") in listed and (B2, "dom") in listed, out
    out = make(lab, "snapshot-list", f"DOMAIN={DOM_C}")
    assert B1 not in out and C1 in out
