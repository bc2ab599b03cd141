"""One lock per Incus target and owner, held by every command that changes Incus, the host's
ruleset or the generated tree (ADR-071).

The lock is per owner too (project_name, the marker on every object we create): two
descriptions with different owners cannot touch each other's objects (ADR-021), so they
need not wait for each other; two trees of one owner on one Incus collide cleanly.

- This host's Incus (remote ``local``): a lock file under /run/lock/anklume, taken with
  flock(2), so the kernel frees it when its holder dies, however it dies. The file names
  the holder (command, PID, host, start time) for the one line a second run prints.
- A remote or a cluster: a network ACL named ``anklume-lock-<owner>`` on that server, created to
  take the lock (creation is atomic: a second controller gets "already exists") and
  deleted to free it. Its description names the holder and a heartbeat the holder renews;
  a lock whose holder is gone (same host, dead PID) or silent (no heartbeat for
  STALE_AFTER seconds) is taken over.

A command started by one that holds the lock (make up runs make apply) finds the holder's
token in ANKLUME_LOCK and goes on under it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from anklume.ops.problems import refuse

ENV = "ANKLUME_LOCK"
ACL_PREFIX = "anklume-lock-"
HEARTBEAT = 20.0
STALE_AFTER = 90.0
POLL = 0.5


@dataclass
class Holder:
    command: str
    pid: int
    host: str
    started: float
    beat: float = 0.0

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"'{self.command}' (PID {self.pid} on {self.host}, since {when})"

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def loads(text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return Holder(str(data["command"]), int(data["pid"]), str(data["host"]),
                          float(data["started"]), float(data.get("beat", 0.0)))
        except (ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the holder still runs: known for this host only."""
        if self.host != socket.gethostname():
            return time.time() - max(self.beat, self.started) < STALE_AFTER
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _me(command: str) -> Holder:
    now = time.time()
    return Holder(command, os.getpid(), socket.gethostname(), now, now)


def lock_dir() -> Path:
    env = os.environ.get("ANKLUME_LOCK_DIR")
    if env:
        return Path(env)
    run = Path("/run/lock")
    return run / "anklume" if os.access(run, os.W_OK) else Path("/tmp/anklume-lock")


def _key(remote: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in remote) or "local"


def _token(remote: str, owner: str) -> str:
    return f"{remote}/{owner}"


def _inherited(remote: str, owner: str) -> bool:
    pid, _, key = os.environ.get(ENV, "").partition("@")
    return key == _token(remote, owner) and pid.isdigit()


def _refused(holder: Holder | None, remote: str) -> Exception:
    who = holder.describe() if holder else "another run"
    return refuse(f"another run holds the lock on Incus '{remote}': {who}",
                  "wait for it, or run again with WAIT=1 to wait for it")


@contextlib.contextmanager
def _file_lock(remote: str, owner: str, command: str, wait: bool, err: TextIO
               ) -> Iterator[None]:
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    if directory.stat().st_uid == os.getuid():
        # Shared by every user of this Incus (root and the incus-admin group alike).
        os.chmod(directory, 0o1777)
    path = directory / f"{_key(remote)}-{_key(owner)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = Holder.loads(os.pread(fd, 4096, 0).decode(errors="replace"))
                if not wait:
                    raise _refused(holder, remote) from None
                if not said:
                    print(f"lock: waiting for {holder.describe() if holder else 'another run'}",
                          file=err, flush=True)
                    said = True
                time.sleep(POLL)
        old = Holder.loads(os.pread(fd, 4096, 0).decode(errors="replace"))
        if old is not None and not said:
            print(f"lock: took over the lock left by {old.describe()}, which ended without "
                  "freeing it", file=err, flush=True)
        me = _me(command)
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.dumps().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing frees the flock


def _query(remote: str, method: str, path: str, data: dict[str, Any] | None = None
           ) -> tuple[int, str]:
    argv = ["incus", "query", "-X", method, f"{remote}:{path}"]
    if data is not None:
        argv[4:4] = ["-d", json.dumps(data)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr)


def _acl_create(remote: str, acl: str, me: Holder) -> tuple[bool, str]:
    rc, out = _query(remote, "POST", "/1.0/network-acls?project=default",
                     {"name": acl, "description": me.dumps()})
    return rc == 0, out


def _acl_holder(remote: str, acl: str) -> Holder | None:
    rc, out = _query(remote, "GET", f"/1.0/network-acls/{acl}?project=default")
    if rc != 0:
        return None
    try:
        return Holder.loads(json.loads(out).get("description", ""))
    except ValueError:
        return None


def _acl_delete(remote: str, acl: str) -> None:
    _query(remote, "DELETE", f"/1.0/network-acls/{acl}?project=default")


@contextlib.contextmanager
def _server_lock(remote: str, owner: str, command: str, wait: bool, err: TextIO
                 ) -> Iterator[None]:
    me = _me(command)
    acl = ACL_PREFIX + _key(owner)
    said = False
    while True:
        ok, out = _acl_create(remote, acl, me)
        if ok:
            break
        if "already exists" not in out:
            raise refuse(f"cannot take the lock on Incus '{remote}': "
                         f"{out.strip().removeprefix('Error: ')}",
                         f"check the remote (make doctor) or trust it (make remote-add "
                         f"REMOTE={remote} TOKEN=<token>)")
        holder = _acl_holder(remote, acl)
        if holder is not None and not holder.alive():
            print(f"lock: took over the lock on '{remote}' left by {holder.describe()}, "
                  "which ended without freeing it", file=err, flush=True)
            _acl_delete(remote, acl)
            continue
        if not wait:
            raise _refused(holder, remote)
        if not said:
            print(f"lock: waiting for {holder.describe() if holder else 'another run'}",
                  file=err, flush=True)
            said = True
        time.sleep(POLL)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT):
            me.beat = time.time()
            _query(remote, "PUT", f"/1.0/network-acls/{acl}?project=default",
                   {"description": me.dumps(), "ingress": [], "egress": [], "config": {}})

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        _acl_delete(remote, acl)


@contextlib.contextmanager
def held(remote: str, owner: str, command: str, wait: bool = False,
         err: TextIO = sys.stderr, backend: str = "") -> Iterator[None]:
    """Hold the lock of Incus REMOTE and OWNER for COMMAND (backend: file or server;
    default by remote). The commands this one starts inherit it."""
    if _inherited(remote, owner):
        yield
        return
    kind = backend or ("file" if remote == "local" else "server")
    manager = _file_lock if kind == "file" else _server_lock
    with manager(remote, owner, command, wait, err):
        previous = os.environ.get(ENV)
        os.environ[ENV] = f"{os.getpid()}@{_token(remote, owner)}"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = previous
