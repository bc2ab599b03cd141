"""Backups on the real Incus (ADR-087): `make backup` of a running domain, encrypted with a
real age identity, `make backup-verify`, and `make restore-backup` after the instance was
destroyed: the file byte for byte, the snapshot, the address and the owner markers come
back. A flipped byte, a truncated archive and a wrong key are each refused in one line and
create nothing. The same archive restored beside its original as another domain (AS=,
ADR-089) and into a second Incus daemon; a pre-apply snapshot taken back (ADR-088).

One lab (owner ``t30bak``, 10.135.x.0/24, nft table ``anklumet30b``): domain ``t30ba`` with
one container ``t30ba-box``, ephemeral, applied once for the module; ``t30bc`` joins it for
the restore AS=. The second daemon (``t30f`` at 10.199.0.41, scripts/incus-netns.sh) is on
the namespace daemons' bridge, so this module runs in one unit with the other modules of
that bridge, one after the other (tests/schedule.py).

Own lab: the round trip destroys and restores its instance, which no lab shared with tests
that only read can allow.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, sync_lab
from tests.integration.reconcile_lab import all_instances, cleanup
from tests.netns_daemons import Lab as Daemons

OWNER = "t30bak"
PREFIX = "t30b"
BASE = "10.135"
TABLE = "anklumet30b"
BOX = "t30ba-box"
MARKER = "t30b-secret-marker-5f1c2e"
COPY = "t30bc-box"  # the backup restored AS=t30bc beside its original
FAR, FAR_ADDRESS, FAR_REMOTE = "t30f", "10.199.0.41", "t30far"  # a second Incus daemon
PORT = 18430


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


def sh(command: str, name: str = BOX, project: str = "t30ba") -> str:
    return subprocess.run(["incus", "exec", name, "--project", project, "--", "sh", "-c",
                           command], check=True, capture_output=True, text=True).stdout


def box() -> dict[str, Any] | None:
    return all_instances().get(("t30ba", BOX))


def reaches(source: str, project: str, address: str) -> bool:
    """A TCP connection from SOURCE to ADDRESS:PORT is accepted (real packets)."""
    script = f"import socket; socket.create_connection(({address!r}, {PORT}), 2).close()"
    return subprocess.run(["incus", "exec", source, "--project", project, "--", "python3",
                           "-c", script], check=False, capture_output=True).returncode == 0


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


@dataclass
class Archive:
    """The encrypted backup of domain t30ba, taken once for the module, and what was read
    before: the instance, a file's sum, make's output."""
    path: Path
    digest: str
    before: dict[str, Any]
    out: str
    err: str
    took: float


@pytest.fixture(scope="module")
def archive(lab: Lab, identity: tuple[Path, str]) -> Archive:
    sh(f"head -c 300000 /dev/urandom > /root/data.bin; echo {MARKER} > /root/marker.txt")
    digest = sh("sha256sum /root/data.bin").split()[0]
    lab.make("snapshot", f"I={BOX}", "NAME=t30bsnap")
    before = box()
    assert before is not None and before["status"] == "Running"
    started = time.monotonic()
    _, out, err = lab.make("backup", "DOMAIN=t30ba", f"OUT={lab.out}", f"ENCRYPT={identity[1]}")
    took = time.monotonic() - started
    archives = sorted(lab.out.glob("t30ba-*.anklume-backup.age"))
    assert len(archives) == 1, (out, err)
    return Archive(archives[0], digest, before, out, err, took)


def test_round_trip_encrypted(lab: Lab, identity: tuple[Path, str], archive: Archive) -> None:
    key, _ = identity
    path, digest, before, out, err = (archive.path, archive.digest, archive.before,
                                      archive.out, archive.err)
    assert f"backup: {BOX}: exporting (frozen meanwhile)" in err
    assert not [p for p in lab.out.iterdir() if ".partial" in p.name]
    assert MARKER.encode() not in path.read_bytes()
    assert str(key.read_text().split("AGE-SECRET-KEY-")[1][:8]) not in out + err
    print(f"\nbackup: {path.stat().st_size / 2**20:.1f} MiB in {archive.took:.1f} s")
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


def test_restore_as_another_domain_beside_the_original(lab: Lab, identity: tuple[Path, str],
                                                      archive: Archive) -> None:
    """AS= (ADR-089): undeclared, the archive's part of infra.yml comes back renamed and
    nothing is created; merged and applied, the backup lands as t30bc-box on t30bc's bridge
    with t30bc's address and hostname and a new identity, its file and snapshot with it; the
    domains' isolation holds for both (real packets), and the next apply changes nothing."""
    key, _ = identity
    args = ("restore-backup", f"FILE={archive.path}", f"KEY={key}", "AS=t30bc")
    _, _, err = lab.make(*args, rc=2)
    stem = archive.path.name.split(".anklume-backup")[0]
    offered = lab.out / f"{stem}-as-t30bc.infra.yml"
    assert f"domain t30bc is not declared in this tree; its part of infra.yml is in {offered}" \
        in err
    assert not [k for k in all_instances() if k[0] == "t30bc"]
    rec = yaml.safe_load(offered.read_text())["domains"]["t30bc"]
    assert list(rec["machines"]) == [COPY] and "subnet_id" not in rec, rec
    assert "ip" not in rec["machines"][COPY]
    assert f"# {BOX} had ip {BASE}.1.10 in t30ba" in offered.read_text()

    doc = description()
    address = f"{BASE}.3.10"
    rec["machines"][COPY]["ip"] = address
    doc["domains"]["t30bc"] = {**rec, "subnet_id": 3}
    (lab.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    lab.make("apply", "DOMAIN=t30bc", "TAGS=networks,projects,profiles")

    _, out, _ = lab.make(*args)
    assert f"instance(s) of domain t30ba restored as t30bc ({COPY})" in out
    copy = all_instances()[("t30bc", COPY)]
    original = box()
    assert copy["status"] == "Running" and original is not None
    assert copy["devices"]["eth0"]["network"] == "net-t30bc"
    assert copy["devices"]["eth0"]["ipv4.address"] == address
    assert copy["config"]["user.anklume.owner"] == OWNER
    assert copy["config"]["volatile.uuid"] != original["config"]["volatile.uuid"]
    assert copy["config"]["volatile.eth0.hwaddr"] != original["config"]["volatile.eth0.hwaddr"]
    assert sh("hostname", COPY, "t30bc").strip() == COPY
    assert sh("sha256sum /root/data.bin", COPY, "t30bc").split()[0] == archive.digest
    snaps = subprocess.run(["incus", "snapshot", "list", COPY, "--project", "t30bc", "-f",
                            "csv", "-c", "n"], check=True, capture_output=True,
                           text=True).stdout.split()
    assert "t30bsnap" in snaps

    lab.make("apply")  # the rest infra.yml declares, and the rules with domain t30bc
    for name, project in ((BOX, "t30ba"), (COPY, "t30bc")):
        sh(f"nohup python3 -m http.server {PORT} >/dev/null 2>&1 &", name, project)
    time.sleep(1)
    assert reaches(BOX, "t30ba", address), "the admin domain does not reach the copy"
    assert not reaches(COPY, "t30bc", f"{BASE}.1.10"), "the copy reaches another domain"
    _, out, _ = lab.make("apply")
    assert "apply: 0 created, 0 changed, 0 removed, 0 orphans" in out, out


@pytest.fixture
def far(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemons, Path]]:
    """A second Incus daemon (scripts/incus-netns.sh), trusted as remote t30far by a client
    configuration of its own, and a tree of another owner aimed at it, with its domain t30bf
    applied without instances."""
    base = tmp_path_factory.mktemp("t30far")
    daemons = Daemons(base / "incus-conf", {FAR: FAR_ADDRESS})
    try:
        daemons.up()
        daemons.trust(FAR_REMOTE, FAR)
        (base / "tree").mkdir()
        tree = lab_tree(base / "tree")
        doc = {"project_name": "t30bfar",
               "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                          "admin_domain": "t30bf", "incus_remote": FAR_REMOTE},
               "domains": {"t30bf": {"subnet_id": 6, "ephemeral": True, "machines": {
                   "t30bf-box": {"type": "lxc", "ip": f"{BASE}.6.10"}}}}}
        (tree / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        rc, out = lab_make(tree, "sync", INCUS_CONF=str(daemons.conf))
        assert rc == 0, out
        allvars = tree / "group_vars" / "all.yml"  # a table of its own, never the real one
        allvars.write_text(allvars.read_text() + "incus_nftables_table: anklumet30f\n")
        rc, out = lab_make(tree, "apply", "TAGS=networks,projects,profiles", timeout=600,
                           INCUS_CONF=str(daemons.conf))
        assert rc == 0, out
        yield daemons, tree
    finally:
        daemons.down()


def test_restore_on_another_incus_as_another_domain(identity: tuple[Path, str],
                                                   archive: Archive,
                                                   far: tuple[Daemons, Path]) -> None:
    """The same archive restored into a second Incus daemon (ADR-089) from a tree of another
    owner aimed at it, under AS=: the file, the snapshot, that tree's bridge, address and
    owner. REMOTE= that the client does not know, or where the domain is not applied, is
    refused in one line."""
    daemons, tree = far
    key, _ = identity
    conf = str(daemons.conf)
    args = ("restore-backup", f"FILE={archive.path}", f"KEY={key}", "AS=t30bf")
    rc, out = lab_make(tree, *args, "REMOTE=nosuch", INCUS_CONF=conf)
    assert rc == 2 and "REMOTE=nosuch is not a remote of this Incus client" in out, out
    rc, out = lab_make(tree, *args, "REMOTE=local", INCUS_CONF=conf)
    assert rc == 2 and "project t30bf of domain t30bf does not exist on Incus 'local'" in out
    rc, out = lab_make(tree, *args, timeout=600, INCUS_CONF=conf)
    assert rc == 0 and f"restored as t30bf on {FAR_REMOTE} (t30bf-box)" in out, out

    where = f"{FAR_REMOTE}:t30bf-box"
    inst = json.loads(daemons.incus("query", f"{FAR_REMOTE}:/1.0/instances/t30bf-box"
                                    "?project=t30bf"))
    assert inst["status"] == "Running"
    assert inst["devices"]["eth0"]["network"] == "net-t30bf"
    assert inst["devices"]["eth0"]["ipv4.address"] == f"{BASE}.6.10"
    assert inst["config"]["user.anklume.owner"] == "t30bfar"
    data = daemons.incus("exec", where, "--project", "t30bf", "--", "sha256sum",
                         "/root/data.bin")
    assert data.split()[0] == archive.digest
    snaps = daemons.incus("snapshot", "list", where, "--project", "t30bf", "-f", "csv", "-c",
                          "n").split()
    assert "t30bsnap" in snaps
