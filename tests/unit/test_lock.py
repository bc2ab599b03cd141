"""The lock on this host's Incus (anklume/ops/lock.py, file backend): real processes
holding, waiting for and abandoning a real flock on a lock file in a temp directory."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import lock

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from anklume.ops import lock
with lock.held("local", "t27", "make apply"):
    print("held", flush=True)
    time.sleep({seconds})
"""


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANKLUME_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv(lock.ENV, raising=False)
    return tmp_path


def _holder(seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(REPO), seconds=seconds)],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_stops_at_once_naming_the_holder(lock_dir: Path) -> None:
    proc = _holder(30)
    try:
        start = time.monotonic()
        with pytest.raises(InputError) as exc, lock.held("local", "t27", "make destroy"):
            pytest.fail("the lock was taken twice")
        assert time.monotonic() - start < 1.0
        line = str(exc.value)
        assert f"another run holds the lock on Incus 'local': 'make apply' (PID {proc.pid} on " \
            in line
        assert "run again with WAIT=1" in line
    finally:
        proc.kill()
        proc.wait()


def test_wait_takes_it_when_the_holder_is_done(lock_dir: Path) -> None:
    proc = _holder(1.5)
    err = io.StringIO()
    start = time.monotonic()
    with lock.held("local", "t27", "make apply", wait=True, err=err):
        waited = time.monotonic() - start
        assert proc.wait(timeout=10) == 0
    assert waited >= 0.5
    assert err.getvalue().startswith("lock: waiting for 'make apply' (PID ")
    assert "took over" not in err.getvalue()


def test_a_killed_holders_lock_is_taken_over_and_said(lock_dir: Path) -> None:
    proc = _holder(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    err = io.StringIO()
    with lock.held("local", "t27", "make apply", err=err):
        pass
    assert err.getvalue().startswith(
        f"lock: took over the lock left by 'make apply' (PID {proc.pid} on ")
    err2 = io.StringIO()
    with lock.held("local", "t27", "make apply", err=err2):
        pass
    assert err2.getvalue() == "", "a lock freed normally is not taken over"


def test_another_owner_or_incus_does_not_wait(lock_dir: Path) -> None:
    proc = _holder(30)
    try:
        with lock.held("local", "other-owner", "make apply"):
            pass
        names = sorted(p.name for p in lock_dir.iterdir())
        assert names == ["local-other-owner.lock", "local-t27.lock"]
    finally:
        proc.kill()
        proc.wait()


def test_a_command_started_under_the_lock_goes_on_under_it(lock_dir: Path) -> None:
    with lock.held("local", "t27", "make up"):
        child = subprocess.run(
            [sys.executable, "-c", HOLD.format(repo=str(REPO), seconds=0)],
            capture_output=True, text=True, env=dict(os.environ), check=False)
        assert child.returncode == 0, child.stderr
    assert lock.ENV not in os.environ
