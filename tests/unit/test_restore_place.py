"""An export made fit for another place before `incus import` (ADR-089): the descriptions
inside it edited, the root filesystem copied byte for byte. The export here is a tar built
by the test in the layout `incus export` writes (backup/index.yaml first, then the
instance's backup.yaml, then rootfs/); the real exports are restored on the real Incus in
tests/integration/test_backup.py."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from anklume.ops import restore
from anklume.ops import restore_place as place

pytestmark = pytest.mark.unit

INSTANCE = """\
  architecture: x86_64
  config:
    user.anklume.managed: "true"
    user.anklume.owner: old
    volatile.uuid: 3196940f-860f-484f-a5ae-1d7965299cf7
    volatile.uuid.generation: 3196940f-860f-484f-a5ae-1d7965299cf7
    volatile.eth0.hwaddr: 10:66:6a:71:06:c2
    volatile.idmap.base: "0"
  devices:
    eth0: {name: eth0, network: net-old, type: nic, ipv4.address: 10.1.1.10}
    root: {path: /, pool: default, type: disk}
  ephemeral: false
  profiles: [default, old-extra]
  created_at: 2026-12-06T21:09:15.908539704Z
  name: old-box
"""
SNAPSHOT = """\
  - name: snap0
    config: {user.anklume.managed: "true", user.anklume.owner: old,
             volatile.eth0.hwaddr: "10:66:6a:71:06:c2"}
    devices:
      eth0: {name: eth0, network: net-old, type: nic, ipv4.address: 10.1.1.10}
    profiles: [default]
"""
BACKUP = f"container:\n{INSTANCE}snapshots:\n{SNAPSHOT}pool: {{name: default}}\n"
PLACE = place.Placement(network="net-new", address="10.2.2.20", owner="new",
                        profiles=("default",), copy=True)


def index_doc() -> str:
    body = "".join(f"  {line}\n" for line in INSTANCE.splitlines())
    snaps = "".join(f"  {line}\n" for line in SNAPSHOT.splitlines())
    return f"name: old-box\nbackend: dir\nconfig:\n  container:\n{body}  snapshots:\n{snaps}"


def test_the_instance_and_its_snapshots_move_to_the_target() -> None:
    doc = yaml.safe_load(place.description("backup/container/backup.yaml", BACKUP.encode(),
                                           PLACE))
    inst, snap = doc["container"], doc["snapshots"][0]
    for rec in (inst, snap):
        assert rec["devices"]["eth0"]["network"] == "net-new"
        assert rec["devices"]["eth0"]["ipv4.address"] == "10.2.2.20"
        assert rec["config"]["user.anklume.owner"] == "new"
        assert "volatile.eth0.hwaddr" not in rec["config"]
        assert rec["profiles"] == ["default"]
    assert "volatile.uuid" not in inst["config"]
    assert inst["config"]["volatile.apply_template"] == "copy"
    assert "volatile.apply_template" not in snap["config"]
    assert inst["config"]["volatile.idmap.base"] == "0"  # a string still
    assert inst["devices"]["root"] == {"path": "/", "pool": "default", "type": "disk"}


def test_index_yaml_is_edited_under_config() -> None:
    doc = yaml.safe_load(place.description("backup/index.yaml", index_doc().encode(), PLACE))
    assert doc["config"]["container"]["devices"]["eth0"]["network"] == "net-new"
    assert doc["config"]["snapshots"][0]["devices"]["eth0"]["network"] == "net-new"
    assert doc["name"] == "old-box"  # the new name is import's argument


def test_timestamps_stay_as_incus_wrote_them() -> None:
    """Nanoseconds, unquoted: Incus reads them back as times."""
    text = place.description("backup/container/backup.yaml", BACKUP.encode(), PLACE).decode()
    assert "created_at: 2026-12-06T21:09:15.908539704Z\n" in text


def test_the_same_name_elsewhere_keeps_its_identity() -> None:
    """REMOTE= or another tree without AS=: the bridge and owner change, uuid and MAC stay;
    a target without a declared address leaves it to DHCP."""
    moved = place.Placement(network="net-new", address="", owner="new", profiles=("default",),
                            copy=False)
    doc = yaml.safe_load(place.description("backup/container/backup.yaml", BACKUP.encode(),
                                           moved))
    cfg = doc["container"]["config"]
    assert cfg["volatile.uuid"] == "3196940f-860f-484f-a5ae-1d7965299cf7"
    assert cfg["volatile.eth0.hwaddr"] == "10:66:6a:71:06:c2"
    assert "volatile.apply_template" not in cfg
    assert "ipv4.address" not in doc["container"]["devices"]["eth0"]


def export(path: Path, payload: bytes) -> None:
    """A zstd tar in the layout of `incus export`, with a root filesystem file that carries
    an extended attribute (a file capability, as ping has)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None, **pax: str) -> None:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o100
            else:
                info.size, info.mode = len(data), 0o4755
            info.pax_headers = pax
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        add("backup/index.yaml", index_doc().encode())
        add("backup/container", None)
        add("backup/container/backup.yaml", BACKUP.encode())
        add("backup/container/rootfs", None)
        add("backup/container/rootfs/usr/bin/ping", payload,
            **{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})
    subprocess.run(["zstd", "-q", "-o", str(path)], input=raw.getvalue(), check=True)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    plain = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        found = {m.name: m for m in tar.getmembers()}
        found["_data"] = tar.extractfile("backup/container/rootfs/usr/bin/ping").read()  # type: ignore[assignment,union-attr]
    return found


def test_rewrite_edits_the_descriptions_and_copies_the_rest(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4000
    src, dst = tmp_path / "export.tar.zst", tmp_path / "placed.tar.zst"
    export(src, payload)
    place.rewrite(src, dst, PLACE)
    before, after = members(src), members(dst)
    assert list(after) == list(before)
    ping = after["backup/container/rootfs/usr/bin/ping"]
    assert ping.mode == 0o4755
    assert ping.pax_headers.get("SCHILY.xattr.security.capability") == "\x01\x00\x00\x02"
    assert hashlib.sha256(after["_data"]).digest() == hashlib.sha256(payload).digest()  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.plain.tar")), "the plain tar was left behind"


def test_an_export_without_descriptions_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "export.tar.zst"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("something/else")
        tar.addfile(info, io.BytesIO(b""))
    subprocess.run(["zstd", "-q", "-o", str(src)], input=raw.getvalue(), check=True)
    with pytest.raises(ValueError, match="no instance description"):
        place.rewrite(src, tmp_path / "out.tar.zst", PLACE)


@pytest.mark.parametrize(("name", "source", "domain", "want"), [
    ("pro-dev", "pro", "pro2", "pro2-dev"),
    ("dev", "pro", "pro2", "pro2-dev"),
    ("pro-dev", "pro", "pro", "pro-dev"),
    ("prod-db", "pro", "lab", "lab-prod-db"),
])
def test_names_follow_the_domain(name: str, source: str, domain: str, want: str) -> None:
    assert restore.renamed(name, source, domain) == want
