"""Backups on the real Incus (ADR-087): `make backup` of a running domain, encrypted with a
real age identity, `make backup-verify`, and `make restore-backup` after the instance was
destroyed: the file byte for byte, the snapshot, the address and the owner markers come
back. A flipped byte, a truncated archive and a wrong key are each refused in one line and
create nothing.

One lab (owner ``t30bak``, 10.135.x.0/24, nft table ``anklumet30b``): domain ``t30ba`` with
one container ``t30ba-box``, ephemeral, applied once for the module.

Own lab: the round trip destroys and restores its instance, which no lab shared with tests
that only read can allow.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_tree, sync_lab
from tests.integration.reconcile_lab import all_instances, cleanup

OWNER = "t30bak"
PREFIX = "t30b"
BASE = "10.135"
TABLE = "anklumet30b"
BOX = "t30ba-box"
MARKER = "t30b-secret-marker-5f1c2e"


def description() -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": "t30ba"},
        "domains": {"t30ba": {"subnet_id": 1, "ephemeral": True,
                              "machines": {BOX: {"type": "lxc", "ip": f"{BASE}.1.10"}}}},
    }


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)
        self.out = root / "archives"
        self.out.mkdir()

    def make(self, *args: str, rc: int | None = 0) -> tuple[int, str, str]:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=self.root,
            input="", capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"})
        if rc is not None:
            assert proc.returncode == rc, (f"make {' '.join(args)} exited {proc.returncode}, "
                                           f"want {rc}:\n{proc.stdout}\n{proc.stderr}")
        return proc.returncode, proc.stdout, proc.stderr


def sh(command: str) -> str:
    return subprocess.run(["incus", "exec", BOX, "--project", "t30ba", "--", "sh", "-c",
                           command], check=True, capture_output=True, text=True).stdout


def box() -> dict[str, Any] | None:
    return all_instances().get(("t30ba", BOX))


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, TABLE)
    lab = Lab(tmp_path_factory.mktemp("t30bak"))
    try:
        sync_lab(lab.root, description(), TABLE)
        lab.make("apply")
        yield lab
    finally:
        cleanup(PREFIX, TABLE)


@pytest.fixture(scope="module")
def identity(lab: Lab) -> tuple[Path, str]:
    key = lab.out / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    return key, public


def refused(lab: Lab, *args: str) -> str:
    """The one line of a refused make; Incus holds no t30ba-box afterwards."""
    _, _, err = lab.make(*args, rc=2)
    lines = [ln for ln in err.splitlines() if ln.startswith("make restore-backup:")]
    assert len(lines) == 1, err
    assert box() is None, "an instance was created from a bad archive"
    return lines[0]


def test_round_trip_encrypted(lab: Lab, identity: tuple[Path, str]) -> None:
    key, public = identity
    sh(f"head -c 300000 /dev/urandom > /root/data.bin; echo {MARKER} > /root/marker.txt")
    digest = sh("sha256sum /root/data.bin").split()[0]
    lab.make("snapshot", f"I={BOX}", "NAME=t30bsnap")
    before = box()
    assert before is not None and before["status"] == "Running"

    started = time.monotonic()
    _, out, err = lab.make("backup", "DOMAIN=t30ba", f"OUT={lab.out}", f"ENCRYPT={public}")
    took = time.monotonic() - started
    archives = sorted(lab.out.glob("t30ba-*.anklume-backup.age"))
    assert len(archives) == 1, (out, err)
    path = archives[0]
    assert f"backup: {BOX}: exporting (frozen meanwhile)" in err
    assert not [p for p in lab.out.iterdir() if ".partial" in p.name]
    assert MARKER.encode() not in path.read_bytes()
    assert str(key.read_text().split("AGE-SECRET-KEY-")[1][:8]) not in out + err
    print(f"\nbackup: {path.stat().st_size / 2**20:.1f} MiB in {took:.1f} s")
    assert box()["status"] == "Running", "the instance stayed frozen"  # type: ignore[index]

    _, out, _ = lab.make("backup-verify", f"FILE={path}", f"KEY={key}")
    assert f"{path}: good:" in out and BOX in out

    lab.make("destroy", f"I={BOX}")
    assert box() is None

    # Damaged copies and a wrong key: one line each, nothing created.
    data = path.read_bytes()
    flipped = lab.out / "flipped.anklume-backup.age"
    flipped.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1])
                        + data[len(data) // 2 + 1:])
    assert "age cannot decrypt it" in refused(lab, "restore-backup", f"FILE={flipped}",
                                              f"KEY={key}")
    cut = lab.out / "cut.anklume-backup.age"
    cut.write_bytes(data[:len(data) * 2 // 3])
    assert "age cannot decrypt it" in refused(lab, "restore-backup", f"FILE={cut}",
                                              f"KEY={key}")
    other = lab.out / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    assert "no identity matched" in refused(lab, "restore-backup", f"FILE={path}",
                                            f"KEY={other}")

    started = time.monotonic()
    lab.make("restore-backup", f"FILE={path}", f"KEY={key}")
    print(f"restore: {time.monotonic() - started:.1f} s")
    after = box()
    assert after is not None and after["status"] == "Running"
    assert sh("sha256sum /root/data.bin").split()[0] == digest
    assert sh("cat /root/marker.txt").strip() == MARKER
    for k in ("user.anklume.managed", "user.anklume.owner"):
        assert after["config"].get(k) == before["config"].get(k), k
    assert after["devices"].get("eth0") == before["devices"].get("eth0")
    assert after["devices"]["eth0"].get("ipv4.address") == f"{BASE}.1.10"
    snaps = subprocess.run(["incus", "snapshot", "list", BOX, "--project", "t30ba", "-f",
                            "csv", "-c", "n"], check=True, capture_output=True,
                           text=True).stdout.split()
    assert "t30bsnap" in snaps

    # Again: it exists now, so it is refused without FORCE=1 and replaced with it.
    _, _, err = lab.make("restore-backup", f"FILE={path}", f"KEY={key}", rc=2)
    assert f"instance {BOX} exists in project t30ba" in err
    sh("rm /root/marker.txt")
    lab.make("restore-backup", f"FILE={path}", f"KEY={key}", "FORCE=1")
    assert sh("cat /root/marker.txt").strip() == MARKER


def test_an_apply_can_be_taken_back(lab: Lab) -> None:
    """global.snapshot_before_apply (ADR-088): an apply that changes the instance snapshots
    it first; `make rollback` brings back its files and config; with keep 1 the older
    pre-apply snapshot is deleted when a newer one is taken."""
    def with_cpu(cpu: str) -> dict[str, Any]:
        doc = description()
        doc["global"]["snapshot_before_apply"] = True
        doc["domains"]["t30ba"]["machines"][BOX]["config"] = {"limits.cpu": cpu}
        return doc

    def write(doc: dict[str, Any]) -> None:
        (lab.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def pre_apply() -> list[str]:
        names = subprocess.run(["incus", "snapshot", "list", BOX, "--project", "t30ba", "-f",
                                "csv", "-c", "n"], check=True, capture_output=True,
                               text=True).stdout.split()
        return sorted(n for n in names if n.startswith("anklume-pre-apply-"))

    write(with_cpu("1"))
    lab.make("apply")
    sh("echo before > /root/state.txt")
    first = pre_apply()
    write(with_cpu("2"))
    lab.make("apply")
    taken = pre_apply()
    assert len(taken) == 1 and taken != first, taken
    sh("echo after > /root/state.txt")
    assert (box() or {})["config"]["limits.cpu"] == "2"
    _, out, _ = lab.make("rollback", f"I={BOX}")
    assert f"rollback: {BOX} is back to {taken[0]}" in out
    assert sh("cat /root/state.txt").strip() == "before"
    assert (box() or {})["config"]["limits.cpu"] == "1"
    # The next change takes a newer one, and the older goes (keep 1).
    time.sleep(1.1)  # snapshot names hold the second
    write(with_cpu("3"))
    lab.make("apply")
    newer = pre_apply()
    assert len(newer) == 1 and newer[0] > taken[0], newer
    write(description())
