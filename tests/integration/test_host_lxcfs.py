"""`make host` recovers from an lxcfs mount whose process died.

A machine restored from a disk snapshot, or an lxcfs that crashed, leaves
its FUSE mount behind; every access to it then fails with "Transport
endpoint is not connected", and so did `make host` (in `mkdir -p`).
This test makes a real stale mount in a directory it owns, never the
host's own /var/lib/incus-lxcfs, and runs the script that host.sh uses.

Own lab: none (no instance: a function fixture starts a second lxcfs on /tmp/anklume-test-lxcfs
with scripts/start-lxcfs.sh, and the test kills it and checks that the host's
/var/lib/incus-lxcfs stays live).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.incus_helpers import run

pytestmark = pytest.mark.incus
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "start-lxcfs.sh"
HOST_LXCFS = Path("/var/lib/incus-lxcfs")


def _mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def _live(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return _mounted(path)


def _lxcfs_pids(path: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"^lxcfs .*{path}$"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def _stop(path: Path) -> None:
    for pid in _lxcfs_pids(path):
        os.kill(pid, signal.SIGKILL)
    if _mounted(path):
        subprocess.run(["umount", "-l", str(path)], check=False)
    Path(f"/run/lxcfs{str(path).replace('/', '-')}.pid").unlink(missing_ok=True)


@pytest.fixture
def mount_dir(incus: str) -> Iterator[Path]:
    # The host's own lxcfs runs, as after `make host`: a second lxcfs must
    # start beside it (they once collided on lxcfs's default pid file).
    run(["bash", str(SCRIPT)])
    assert _live(HOST_LXCFS), "the host's lxcfs should serve its mount"
    path = Path("/tmp/anklume-test-lxcfs")
    _stop(path)  # leftovers of an interrupted earlier run
    yield path
    _stop(path)
    path.rmdir()


def _wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_stale_lxcfs_mount_is_replaced_by_a_live_one(mount_dir: Path) -> None:
    out = run(["bash", str(SCRIPT), str(mount_dir)])
    assert "started lxcfs" in out
    assert _live(mount_dir)
    assert run(["bash", str(SCRIPT), str(mount_dir)]) == "", "a live mount is left alone"

    for pid in _lxcfs_pids(mount_dir):
        os.kill(pid, signal.SIGKILL)
    # The kernel aborts the FUSE connection once the dead process is torn down.
    _wait(lambda: not _live(mount_dir), "the mount did not go stale after lxcfs died")
    assert _mounted(mount_dir), "the stale mount should still be listed"

    out = run(["bash", str(SCRIPT), str(mount_dir)])
    assert "unmounting stale lxcfs mount" in out
    assert "started lxcfs" in out
    assert _live(mount_dir)
    assert (mount_dir / "proc" / "uptime").read_text(encoding="utf-8").strip()
    assert _live(HOST_LXCFS), "the host's lxcfs is left alone"
