"""`make backup`'s exports one after another (ADR-087, ADR-092), on a fake `incus` that logs
what it is asked: the next instance's export is started (frozen, `incus export` under way)
as soon as the current one's first bytes arrive, so Incus makes it while the current one is
summed and written; every frozen instance is resumed, also when an export fails."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest

from anklume.ops import backup
from anklume.ops import backup_archive as archive
from anklume.ops.context import Context
from anklume.ops.instances import Live
from anklume.ops.targets import TARGETS
from anklume.ops.tree import Tree

pytestmark = pytest.mark.unit

FAKE = """\
#!/usr/bin/env python3
import os, sys, time
verb, name = sys.argv[1], sys.argv[4]
with open(os.environ["T30B_LOG"], "a") as log:
    log.write(f"{verb} {name}\\n")
if verb == "export":
    if name == os.environ.get("T30B_FAIL"):
        sys.stderr.write("Error: no space left on device\\n")
        sys.exit(1)
    time.sleep(0.2)  # Incus making the export
    sys.stdout.buffer.write(name.encode() * 1000)
"""
HOSTS = ["t30ba-one", "t30ba-two", "t30bb-three"]


@pytest.fixture()
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "incus").write_text(FAKE)
    (folder / "incus").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("T30B_LOG", str(tmp_path / "log"))
    (tmp_path / "log").touch()
    return tmp_path / "log"


def exports(tmp_path: Path) -> tuple[Context, backup._Exports]:
    ctx = Context(TARGETS["backup"], {}, root=tmp_path, out=io.StringIO(), err=io.StringIO())
    lives = {h: Live(name=h, project=h.split("-")[0], status="Running") for h in HOSTS}
    return ctx, backup._Exports(ctx, Tree(root=tmp_path), lives, None, HOSTS)


def test_the_next_export_starts_while_the_current_one_streams(tmp_path: Path,
                                                              log: Path) -> None:
    ctx, pipeline = exports(tmp_path)
    out = io.BytesIO()
    writer = archive.Writer(out)
    try:
        records = [backup._export(ctx, writer, pipeline, h) for h in HOSTS]
    finally:
        pipeline.close()
    calls = log.read_text().splitlines()
    for before, after in itertools.pairwise(HOSTS):
        assert calls.index(f"pause {after}") < calls.index(f"resume {before}"), calls
    assert sorted(c for c in calls if c.startswith("pause")) == [f"pause {h}" for h in HOSTS]
    assert sorted(c for c in calls if c.startswith("resume")) == [f"resume {h}"
                                                                 for h in HOSTS]
    assert [r["size"] for r in records] == [len(h) * 1000 for h in HOSTS]
    assert all(r["running"] and r["chunks"] == 1 for r in records)
    writer.close({"domain": "t30ba", "instances": records})
    out.seek(0)
    manifest = archive.read(out)
    assert [m["name"] for m in manifest["members"]] == [
        f"instances/{h}.tar.zst.0000" for h in HOSTS]


def test_a_failed_export_leaves_no_instance_frozen(tmp_path: Path, log: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T30B_FAIL", HOSTS[0])
    ctx, pipeline = exports(tmp_path)
    with pytest.raises(OSError, match="incus export of t30ba-one failed: no space left"):
        try:
            backup._export(ctx, archive.Writer(io.BytesIO()), pipeline, HOSTS[0])
        finally:
            pipeline.close()
    calls = log.read_text().splitlines()
    paused = sorted(c.split()[1] for c in calls if c.startswith("pause"))
    assert paused == HOSTS[:1], calls  # no byte came: the next one was not started
    assert sorted(c.split()[1] for c in calls if c.startswith("resume")) == paused, calls


def test_a_stream_tells_its_first_bytes_once() -> None:
    for data in (b"", b"x", b"y" * 1000):
        out = io.BytesIO()
        seen: list[int] = []

        def first(out: io.BytesIO = out, seen: list[int] = seen) -> None:
            seen.append(out.tell())

        archive.Writer(out).add_stream("instances/a.tar.zst", io.BytesIO(data), first=first)
        assert seen == ([0] if data else []), data  # before anything of it was written
