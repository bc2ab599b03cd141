"""`make restore-backup FILE='<pattern>'` over several archives (ADR-087, ADR-092): the next
archive is checked (read, summed, spooled) while the one before is imported and started,
yet nothing of an archive reaches Incus before its own check passed, the archives land in
order one at a time, and a refusal names the archives restored before it. The check and the
landing are stand-ins that log when they run; the real ones run in
tests/integration/test_backup.py."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from anklume.errors import InputError, Problem
from anklume.ops import backup_verify as verify
from anklume.ops import restore
from anklume.ops.context import Context
from anklume.ops.targets import TARGETS
from anklume.ops.tree import Tree

pytestmark = pytest.mark.unit

NAMES = ["t30ba-1.anklume-backup", "t30bb-2.anklume-backup", "t30bc-3.anklume-backup"]


class Stage:
    """The stand-ins: CHECK_BAD's check and LAND_BAD's landing are refused."""

    def __init__(self, tmp: Path, check_bad: str = "", land_bad: str = "") -> None:
        self.tmp, self.check_bad, self.land_bad = tmp, check_bad, land_bad
        self.events: list[str] = []
        self.spools: list[Path] = []
        self.lock = threading.Lock()

    def log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def check(self, path: Path, key: Path | None, spool: restore.Spool) -> dict[str, Any]:
        self.spools.append(spool.tmp)
        self.log(f"check {path.name} start")
        time.sleep(0.15)
        self.log(f"check {path.name} end")
        if path.name == self.check_bad:
            raise InputError([Problem("make", None, str(path), "member x is missing", "")])
        return {"domain": path.name.split("-")[0], "instances": []}

    def land(self, ctx: Context, path: Path, key: Path | None, manifest: dict[str, Any],
             spool: restore.Spool) -> int:
        assert spool.tmp.is_dir()
        self.log(f"land {path.name} start")
        time.sleep(0.3)
        self.log(f"land {path.name} end")
        if path.name == self.land_bad:
            raise InputError([Problem("make", None, str(path), "incus import failed", "")])
        return 0


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: Stage) -> list[str]:
    paths = [tmp_path / n for n in NAMES]
    monkeypatch.setattr(verify, "inputs", lambda ctx: (paths, None))
    monkeypatch.setattr(verify, "check", stage.check)
    monkeypatch.setattr(restore, "_land", stage.land)
    ctx = Context(TARGETS["restore-backup"], {}, root=tmp_path, out=io.StringIO(),
                  err=io.StringIO(), _tree=Tree(root=tmp_path))
    try:
        assert restore.run(ctx) == 0
        return []
    except InputError as exc:
        return [p.render() for p in exc.problems]
    finally:
        assert stage.spools and not any(s.exists() for s in stage.spools), "spool left"


def test_the_next_archive_is_checked_while_the_one_before_lands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(tmp_path)
    assert run(tmp_path, monkeypatch, stage) == []
    ev = stage.events
    for n, name in enumerate(NAMES):
        assert ev.index(f"check {name} end") < ev.index(f"land {name} start"), ev
        if n:
            before = NAMES[n - 1]
            assert ev.index(f"check {name} start") < ev.index(f"land {before} end"), ev
            assert ev.index(f"land {before} end") < ev.index(f"land {name} start"), ev


def test_a_refused_landing_stops_the_next_archive_before_it_lands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(tmp_path, land_bad=NAMES[1])
    got = run(tmp_path, monkeypatch, stage)
    assert len(got) == 1 and "incus import failed" in got[0], got
    assert f"(1 archive(s) before it restored: {NAMES[0]})" in got[0], got
    assert f"land {NAMES[2]} start" not in stage.events, stage.events


def test_a_damaged_archive_after_a_good_one_names_what_was_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(tmp_path, check_bad=NAMES[1])
    got = run(tmp_path, monkeypatch, stage)
    assert len(got) == 1 and "member x is missing" in got[0], got
    assert f"(1 archive(s) before it restored: {NAMES[0]})" in got[0], got
    assert f"land {NAMES[0]} end" in stage.events  # waited for, not cut short
    assert not any(e.startswith(f"land {NAMES[1]}") for e in stage.events), stage.events
