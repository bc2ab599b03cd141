"""controller_sha256 keeps the digest of an unchanged file (the admin's probe compares the
16 MB incus client with the instance's copy on every apply), and so does the probe inside
the instance (cached_sha256, ADR-082): real files in a temp folder."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from ansible_collections.anklume.incus.plugins.filter.controller import controller_sha256
from ansible_collections.anklume.incus.plugins.module_utils import state_probe

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """The digest cache's clock, SECONDS on (a file's change time cannot be set back)."""
    now = time.time_ns()
    monkeypatch.setattr(state_probe.time, "time_ns", lambda: now + seconds * 1_000_000_000)


def test_the_digest_is_kept_and_served_while_the_file_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, cache = tmp_path / "incus", tmp_path / "cache"
    client.write_bytes(b"client v1" * 1000)
    later(monkeypatch, 10)
    assert controller_sha256(str(client), str(cache)) == sha(b"client v1" * 1000)
    record = cache / "controller-sha256.json"
    kept = json.loads(record.read_text())
    assert kept[str(client)]["sha256"] == sha(b"client v1" * 1000)
    # Served from the record: a planted digest comes back while the file is the same.
    kept[str(client)]["sha256"] = "planted"
    record.write_text(json.dumps(kept))
    assert controller_sha256(str(client), str(cache)) == "planted"


def test_a_rewritten_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, cache = tmp_path / "incus", tmp_path / "cache"
    client.write_bytes(b"client v1")
    os.utime(client, ns=(0, 0))  # an old file: its digest is kept
    controller_sha256(str(client), str(cache))
    later(monkeypatch, 10)
    controller_sha256(str(client), str(cache))
    assert str(client) in json.loads((cache / "controller-sha256.json").read_text())
    client.write_bytes(b"client v2")  # same size: the new times tell it
    assert controller_sha256(str(client), str(cache)) == sha(b"client v2")


def test_a_file_changed_seconds_ago_is_not_kept(tmp_path: Path) -> None:
    """Within one clock tick a second write could keep every part of its identity."""
    client, cache = tmp_path / "incus", tmp_path / "cache"
    client.write_bytes(b"fresh")
    assert controller_sha256(str(client), str(cache)) == sha(b"fresh")
    assert not (cache / "controller-sha256.json").exists()


def test_without_a_usable_cache_the_digest_is_still_right(tmp_path: Path) -> None:
    client = tmp_path / "incus"
    client.write_bytes(b"abc")
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    assert controller_sha256(str(client)) == sha(b"abc")
    assert controller_sha256(str(client), str(blocked / "cache")) == sha(b"abc")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "controller-sha256.json").write_text("not json")
    assert controller_sha256(str(client), str(tmp_path / "cache")) == sha(b"abc")


def test_the_probe_in_an_instance_keeps_digests_and_still_sees_a_changed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's file check with the instance's record: an unchanged file is not read
    again (a planted digest is served), and any write to it is still content drift."""
    client, record = tmp_path / "incus", tmp_path / "cache" / "probe-sha256.json"
    client.write_bytes(b"client v1")
    want = {"path": str(client), "sha256": sha(b"client v1")}
    later(monkeypatch, 10)
    assert state_probe.probe_all([probe_params(files=[want])], str(record)) == [[]]
    kept = json.loads(record.read_text())
    kept[str(client)]["sha256"] = "planted"
    record.write_text(json.dumps(kept))
    assert state_probe.file_drift(want, str(record)) == [f"{client}: content differs"]
    with client.open("r+b") as handle:  # same size, same modification time: the change
        handle.write(b"C")              # time still tells it
    os.utime(client, ns=(client.stat().st_atime_ns, os.stat(record).st_mtime_ns))
    kept[str(client)]["sha256"] = want["sha256"]
    record.write_text(json.dumps(kept))
    assert state_probe.file_drift(want, str(record)) == [f"{client}: content differs"]


def probe_params(**given: object) -> dict[str, object]:
    params: dict[str, object] = {"packages": [], "locales": [], "lines": [], "links": [],
                                 "files": [], "directories": [], "commands": [],
                                 "force": False}
    params.update(given)
    return params
