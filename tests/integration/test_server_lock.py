"""The lock of a remote or cluster (anklume/ops/lock.py, server backend): a network ACL on
the Incus server, created to take the lock. Driven here against this host's real daemon
with the server backend forced, under an owner of its own (t27srvlock): the same API calls a
remote answers. Holders are real processes.

Own lab: none (no instance or tree: a function fixture deletes the network ACL of owner
t27srvlock on the host's daemon before and after each test, and the lock holders are local
processes).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import lock

REPO = Path(__file__).resolve().parents[2]
OWNER = "t27srvlock"
ACL = f"{lock.ACL_PREFIX}{OWNER}"
HOLD = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from anklume.ops import lock
with lock.held("local", {OWNER!r}, "make apply", backend="server"):
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def _acl_exists() -> bool:
    return subprocess.run(["incus", "query", f"/1.0/network-acls/{ACL}?project=default"],
                          capture_output=True, check=False).returncode == 0


@pytest.fixture
def clean() -> Iterator[None]:
    os.environ.pop(lock.ENV, None)
    subprocess.run(["incus", "query", "-X", "DELETE", f"/1.0/network-acls/{ACL}?project=default"],
                   capture_output=True, check=False)
    yield
    subprocess.run(["incus", "query", "-X", "DELETE", f"/1.0/network-acls/{ACL}?project=default"],
                   capture_output=True, check=False)


def _holder(seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_controller_stops_naming_the_holder_and_waits_with_wait(clean: None) -> None:
    proc = _holder(2)
    assert _acl_exists()
    start = time.monotonic()
    with pytest.raises(InputError) as exc, lock.held("local", OWNER, "make destroy",
                                                     backend="server"):
        pytest.fail("the lock was taken twice")
    assert time.monotonic() - start < 1.0
    assert f"another run holds the lock on Incus 'local': 'make apply' (PID {proc.pid} on " \
        in str(exc.value)
    err = io.StringIO()
    with lock.held("local", OWNER, "make destroy", wait=True, err=err, backend="server"):
        assert proc.wait(timeout=10) == 0
    assert err.getvalue().startswith("lock: waiting for 'make apply'")
    assert not _acl_exists(), "the lock is freed on the server when its holder is done"


def test_a_killed_holders_lock_on_the_server_is_taken_over(clean: None) -> None:
    proc = _holder(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _acl_exists(), "a killed holder cannot free the server's lock"
    err = io.StringIO()
    with lock.held("local", OWNER, "make apply", err=err, backend="server"):
        assert _acl_exists()
    assert f"took over the lock on 'local' left by 'make apply' (PID {proc.pid} " in err.getvalue()
    assert not _acl_exists()


def _plant(holder: lock.Holder) -> None:
    subprocess.run(["incus", "query", "-X", "POST", "/1.0/network-acls?project=default", "-d",
                    f'{{"name": "{ACL}", "description": {json.dumps(holder.dumps())}}}'],
                   check=True, capture_output=True)


def test_another_controllers_lock_counts_while_its_heartbeat_is_fresh(
        clean: None, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    _plant(lock.Holder("make apply", 4242, "t27-elsewhere", now - 3600, now))
    with pytest.raises(InputError, match=r"'make apply' \(PID 4242 on t27-elsewhere"), \
            lock.held("local", OWNER, "make apply", backend="server"):
        pytest.fail("a live controller's lock was taken")
    subprocess.run(["incus", "query", "-X", "DELETE", f"/1.0/network-acls/{ACL}?project=default"],
                   check=True, capture_output=True)
    _plant(lock.Holder("make apply", 4242, "t27-elsewhere", now - 3600,
                       now - lock.STALE_AFTER - 1))
    err = io.StringIO()
    monkeypatch.setattr(lock, "HEARTBEAT", 0.3)
    with lock.held("local", OWNER, "make apply", err=err, backend="server"):
        first = _beat()
        time.sleep(1.0)
        assert _beat() > first, "the holder renews its heartbeat"
    assert "took over the lock on 'local' left by 'make apply' (PID 4242 on t27-elsewhere" \
        in err.getvalue()


def _beat() -> float:
    out = subprocess.run(["incus", "query", f"/1.0/network-acls/{ACL}?project=default"],
                         check=True, capture_output=True, text=True).stdout
    return float(json.loads(json.loads(out)["description"])["beat"])
