"""The backup archive (ADR-087) without Incus: written and verified on small real files, and
through a real `age` with a generated identity. Each damage is refused in one line per
problem, exit 2 (backup_verify.check raises the InputError the make target prints)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import backup_archive as archive
from anklume.ops import backup_crypt as crypt
from anklume.ops import backup_verify as verify

pytestmark = pytest.mark.unit

MARKER = b"t30b-plaintext-marker-0123456789"


def _need_age() -> None:
    if shutil.which("age") and shutil.which("age-keygen"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("age is not installed: scripts/host.sh installs it (apt-get install age)")
    pytest.skip("age is not installed here (apt-get install age); CI requires it")


def write(path: Path, args: list[str] | None = None, big: int = 0) -> None:
    with crypt.writer(path, args) as stream:
        w = archive.Writer(stream)
        w.add_bytes("infra.yml", b"domains: {t30ba: {subnet_id: 1}}\n")
        w.add_bytes("vars/host_vars/t30ba-box.yml", MARKER * 4)
        w.add_stream("instances/t30ba-box.tar.zst", io.BytesIO(MARKER * big))
        w.close({"domain": "t30ba", "instances": [{"name": "t30ba-box", "chunks": 1}]})


def lines(path: Path, key: Path | None = None) -> list[str]:
    try:
        verify.check(path, key)
    except InputError as exc:
        assert exc.exit_code == 2
        return [p.render() for p in exc.problems]
    return []


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, "r|") as tar:
        return list(tar)


def rebuild(src: Path, dst: Path, drop: str = "", extra: bool = False,
            manifest: bytes | None = None) -> None:
    """SRC's members into DST, one dropped, one added before the manifest, or a new one."""
    with tarfile.open(src, "r") as old, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as new:
        for info in old.getmembers():
            if info.name == drop:
                continue
            data = old.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == archive.MANIFEST:
                if extra:
                    more = tarfile.TarInfo("vars/extra.yml")
                    more.size = 3
                    new.addfile(more, io.BytesIO(b"x: "))
                data = manifest if manifest is not None else data
                info.size = len(data)
            new.addfile(info, io.BytesIO(data))


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    path = tmp_path / "t30ba.anklume-backup"
    write(path, big=1000)
    return path


def test_a_good_archive_verifies_with_the_manifest_last(good: Path) -> None:
    assert lines(good) == []
    names = [m.name for m in members(good)]
    assert names[-1] == archive.MANIFEST
    manifest = verify.check(good, None)
    assert [m["name"] for m in manifest["members"]] == names[:-1]
    assert manifest["members"][2]["size"] == len(MARKER) * 1000


def test_a_stream_longer_than_a_chunk_is_cut(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "CHUNK", 100)
    path = tmp_path / "a"
    write(path, big=10)  # 320 bytes: 100 + 100 + 100 + 20
    names = [m.name for m in members(path)]
    assert [n for n in names if n.startswith("instances/")] == [
        f"instances/t30ba-box.tar.zst.{i:04d}" for i in range(4)]
    assert lines(path) == []


def test_a_flipped_byte_is_named(good: Path) -> None:
    data = bytearray(good.read_bytes())
    at = data.index(MARKER) + 3
    data[at] ^= 1
    good.write_bytes(bytes(data))
    got = lines(good)
    assert len(got) == 1 and "does not match its sha256" in got[0], got


@pytest.mark.parametrize("cut", ["half", "in the manifest"])
def test_a_truncated_archive_is_refused(good: Path, cut: str) -> None:
    data = good.read_bytes()
    # The tar's end padding is no content: a cut there loses nothing, so none is tried.
    at = len(data) // 2 if cut == "half" else data.index(b'"format"')
    good.write_bytes(data[:at])
    got = lines(good)
    assert len(got) == 1 and ("truncated" in got[0] or "ends early" in got[0]), got


def test_a_missing_member_is_named(good: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    rebuild(good, bad, drop="infra.yml")
    assert lines(bad) == [f"make: {bad}: member infra.yml listed in manifest.json is "
                          f"missing; {verify.DAMAGED}"]


def test_an_extra_member_is_named(good: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    rebuild(good, bad, extra=True)
    got = lines(bad)
    assert len(got) == 1 and "vars/extra.yml is not in manifest.json" in got[0], got


@pytest.mark.parametrize(("manifest", "want"), [
    (b"{not json", "manifest.json is not JSON"),
    (b'{"format": "other"}', "not an AnKLuMe backup manifest"),
    (json.dumps({"format": "anklume-backup", "version": 9, "members": []}).encode(),
     "format version 9"),
    (json.dumps({"format": "anklume-backup", "version": 1,
                 "members": [{"name": "../etc/passwd", "size": 1, "sha256": "0" * 64}]}).encode(),
     "member entry 0 is malformed"),
])
def test_a_bad_manifest_is_named(good: Path, tmp_path: Path, manifest: bytes, want: str) -> None:
    bad = tmp_path / "bad"
    rebuild(good, bad, manifest=manifest)
    got = lines(bad)
    assert len(got) == 1 and want in got[0], got


def test_something_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"hello\n" * 100)
    got = lines(path)
    assert len(got) == 1 and "not a tar stream" in got[0], got


@pytest.fixture()
def identity(tmp_path: Path) -> tuple[Path, str]:
    _need_age()
    key = tmp_path / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    return key, public


def test_an_encrypted_round_trip_hides_the_plaintext(tmp_path: Path,
                                                      identity: tuple[Path, str]) -> None:
    key, public = identity
    path = tmp_path / "t30ba.anklume-backup.age"
    write(path, crypt.recipients(public), big=1000)
    assert crypt.encrypted(path)
    assert MARKER not in path.read_bytes()
    assert b"manifest.json" not in path.read_bytes()
    assert verify.check(path, key)["domain"] == "t30ba"


def test_a_recipients_file_works_too(tmp_path: Path, identity: tuple[Path, str]) -> None:
    key, public = identity
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(public + "\n")
    path = tmp_path / "a.age"
    write(path, crypt.recipients(str(recipients)))
    assert lines(path, key) == []


def test_a_wrong_key_is_refused_in_one_line(tmp_path: Path, identity: tuple[Path, str]) -> None:
    _, public = identity
    other = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    path = tmp_path / "a.age"
    write(path, crypt.recipients(public))
    got = lines(path, other)
    assert len(got) == 1 and "no identity matched" in got[0] and "KEY=" in got[0], got
    assert str(other.read_text().split("AGE-SECRET-KEY-")[1][:10]) not in got[0]


def test_a_damaged_or_truncated_ciphertext_is_refused(tmp_path: Path,
                                                      identity: tuple[Path, str]) -> None:
    key, public = identity
    path = tmp_path / "a.age"
    write(path, crypt.recipients(public), big=4000)
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    path.write_bytes(bytes(flipped))
    got = lines(path, key)
    assert len(got) == 1 and "age cannot decrypt it" in got[0], got
    path.write_bytes(data[: len(data) * 3 // 4])
    got = lines(path, key)
    assert len(got) == 1 and "age cannot decrypt it" in got[0], got


def test_an_identity_or_nonsense_is_no_recipient(tmp_path: Path,
                                                 identity: tuple[Path, str]) -> None:
    key, _ = identity
    for value in (str(key), "age1notakey", "/nonexistent/recipients"):
        with pytest.raises(InputError) as exc:
            crypt.recipients(value)
        text = exc.value.problems[0].render()
        assert "ENCRYPT=" in text and "AGE-SECRET-KEY" not in text, text
