"""Streamed, checked copies of a file or folder between instances and the host (ADR-085).

The public API (make copy, anklume/ops/copy.py, and every other verb that moves files):

- ``Endpoint(name, project="default", remote="local")``: an instance, reached with
  ``incus exec --project PROJECT [REMOTE:]NAME``.
- ``copy_between(src, path, dst, into=None) -> Report``: PATH (absolute) of instance SRC
  into folder INTO of instance DST (default ``/root/Incoming/<src.name>``).
- ``push_from_host(path, dst, into) -> Report``: a host file or folder into folder INTO
  of instance DST.
- ``pull_to_host(src, path, into) -> Report``: PATH of instance SRC into the host folder
  INTO.

Each one streams: the source's ``tar -c`` goes through :class:`anklume.ops.tarfilter.Filter`
in this process (one block at a time, nothing on the host's disk) into the receiving
side's ``tar -x``, run in a fresh hidden folder inside INTO. That folder is moved to the
first free name of INTO (NAME, then NAME.1, NAME.2, ...: nothing is ever overwritten)
only when the whole stream arrived and passed the checks; otherwise it is removed and
nothing is left. The copy keeps permission bits and mtimes, never owners (the receiving
side's tar runs with ``--no-same-owner``: root in an instance, the user on the host), and
refuses what tarfilter refuses (links out of the tree, devices, fifos, ``..`` or absolute
names; sockets are skipped by tar). A missing INTO is made; a symbolic link anywhere in
INTO's path is refused, never followed.

A :class:`Report` says where the copy landed and each regular file's path (under the
copied name), size and sha256. A user's error (a missing source path, a refused member,
a link in INTO's path) raises ``problems.refuse`` (one line, exit 2); a failure of tar or
incus raises an OutputError (exit 1). Either way the receiving side holds nothing new.
"""

from __future__ import annotations

import contextlib
import posixpath
import subprocess
import tarfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from anklume.errors import OutputError, Problem
from anklume.ops.problems import refuse
from anklume.ops.tarfilter import File as File
from anklume.ops.tarfilter import Filter, Refused

INCOMING = "/root/Incoming"
# The sending side: PATH's folder, then tar of its last name. 3: PATH does not exist.
SEND = r"""
p=$1
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo "no such file or folder" >&2; exit 3; fi
cd -- "$(dirname -- "$p")" || exit 4
exec tar -cf - -- "$(basename -- "$p")"
"""
# The receiving side: INTO checked and made, the stream extracted in a fresh hidden folder
# of INTO, its payload moved to the first free NAME[.N] when `done` arrived, the folder
# removed whatever happens (and the folders of INTO it made, when nothing landed). Exit 3:
# the stream stopped early (refused); 4: INTO refused.
RECEIVE = r"""
into=$1 name=$2 made= tmp= landed=
umask 022
leave() {
  [ -z "$tmp" ] || rm -rf -- "$tmp"
  if [ -z "$landed" ]; then
    IFS='
'
    for d in $made; do rmdir -- "$d" 2>/dev/null; done
  fi
}
trap leave EXIT
trap 'exit 6' HUP INT TERM
path= IFS=/
set -f
for part in $into; do
  [ -n "$part" ] || continue
  path="$path/$part"
  if [ -L "$path" ]; then echo "$path is a symbolic link (not followed)" >&2; exit 4; fi
  if [ ! -e "$path" ]; then mkdir -- "$path" || exit 4; made="$path
$made"
  elif [ ! -d "$path" ]; then echo "$path is not a folder" >&2; exit 4; fi
done
unset IFS
tmp=$(mktemp -d "$into/.anklume-incoming.XXXXXX") || exit 5
tar -C "$tmp" -xpf - --no-same-owner 2>"$tmp/tar.err"
rc=$?
if [ ! -f "$tmp/done" ]; then exit 3; fi
if [ "$rc" != 0 ]; then cat -- "$tmp/tar.err" >&2; exit 5; fi
n=0 dest="$into/$name"
while [ -e "$tmp/payload" ] || [ -L "$tmp/payload" ]; do
  if [ ! -e "$dest" ] && [ ! -L "$dest" ]; then mv -n -T -- "$tmp/payload" "$dest"; fi
  if [ ! -e "$tmp/payload" ] && [ ! -L "$tmp/payload" ]; then landed=1; break; fi
  n=$((n + 1)) dest="$into/$name.$n"
  if [ "$n" -gt 9999 ]; then echo "no free name for $name in $into" >&2; exit 5; fi
done
printf '%s\n' "$dest"
"""
# The tail of a side's error output kept for the message (it is drained as it comes).
TAIL = 4096


@dataclass(frozen=True)
class Endpoint:
    """An instance: its name, Incus project and remote."""

    name: str
    project: str = "default"
    remote: str = "local"

    def argv(self, *command: str) -> list[str]:
        where = self.name if self.remote == "local" else f"{self.remote}:{self.name}"
        return ["incus", "exec", "--mode=non-interactive", "--project", self.project, where,
                "--", *command]

    def __str__(self) -> str:
        return self.name


@dataclass
class Report:
    """Where the copy landed (the receiving side's path) and the regular files copied."""

    landed: str
    files: list[File] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


def copy_between(src: Endpoint, path: str, dst: Endpoint, into: str | None = None) -> Report:
    """PATH of instance SRC into folder INTO of instance DST (default /root/Incoming/SRC)."""
    path, name = _named(path)
    into = into or f"{INCOMING}/{src.name}"
    return _stream(src.argv("sh", "-c", SEND, "sh", path), f"{path} in {src}",
                   dst.argv("sh", "-c", RECEIVE, "sh", into, name), f"{into} in {dst}", name)


def push_from_host(path: str | Path, dst: Endpoint, into: str) -> Report:
    """The host's PATH (a file or folder) into folder INTO of instance DST."""
    host, name = _named(str(Path(path).absolute()))
    return _stream(["sh", "-c", SEND, "sh", host], f"{host} on the host",
                   dst.argv("sh", "-c", RECEIVE, "sh", into, name), f"{into} in {dst}", name)


def pull_to_host(src: Endpoint, path: str, into: str | Path) -> Report:
    """PATH of instance SRC into the host folder INTO."""
    path, name = _named(path)
    folder = str(Path(into).absolute())
    return _stream(src.argv("sh", "-c", SEND, "sh", path), f"{path} in {src}",
                   ["sh", "-c", RECEIVE, "sh", folder, name], f"{folder} on the host", name)


def _named(path: str) -> tuple[str, str]:
    """Absolute PATH without `.`, `..` and doubled slashes, and its last name; refused when
    PATH names no file of its own."""
    if not path.startswith("/"):
        raise refuse(f"{path!r} is a relative path", "give the absolute path, e.g. /root/notes")
    clean = posixpath.normpath(path)
    name = posixpath.basename(clean)
    if not name or name in (".", ".."):
        raise refuse(f"{path!r} names no file or folder of its own",
                     "name a file or folder under /, not / itself")
    return clean, name


def _failed(what: str) -> OutputError:
    return OutputError([Problem("make", None, "", what, "nothing new was left there")])


class _Drain(threading.Thread):
    """Read a pipe to its end in the background, keeping its last TAIL bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe, self.data = pipe, b""
        self.start()

    def run(self) -> None:
        for chunk in iter(lambda: self.pipe.read(65536), b""):
            self.data = (self.data + chunk)[-TAIL:]

    def text(self) -> str:
        self.join()
        lines = self.data.decode("utf-8", "replace").strip().splitlines()
        return lines[-1].removeprefix("Error: ") if lines else ""


def _stream(send: Sequence[str], source: str, receive: Sequence[str], target: str,
            name: str) -> Report:
    """Run SEND (a tar on its stdout) into RECEIVE (RECEIVE's script on its stdin) through
    the filter; the report, or the one error that says why nothing was copied."""
    sender = subprocess.Popen(list(send), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert sender.stdout is not None and sender.stderr is not None
    send_err = _Drain(sender.stderr)
    try:
        receiver = subprocess.Popen(list(receive), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError:
        sender.kill()
        sender.wait()
        raise
    assert receiver.stdin is not None and receiver.stdout is not None
    assert receiver.stderr is not None
    got_out, got_err = _Drain(receiver.stdout), _Drain(receiver.stderr)
    refused: str | None = None  # a member the filter refused
    broken: str | None = None  # no tar stream came
    finished = False
    files: list[File] = []
    try:
        check = Filter(receiver.stdin, name)
        try:
            files = check.copy(sender.stdout)
            while sender.stdout.read(65536):  # tar's padding after the end of the archive
                pass
            if sender.wait() == 0:
                check.finish()
                finished = True
        except Refused as exc:
            refused = str(exc)
        except tarfile.TarError as exc:
            broken = f"what came from {source} is no tar archive ({exc})"
        except BrokenPipeError:
            pass  # the receiver ended first: its exit status says why
    finally:
        if not finished:  # refused, cut, or interrupted: the sender is not waited for
            sender.kill()
        with contextlib.suppress(BrokenPipeError):  # it ended first: its status says why
            receiver.stdin.close()
        sent, received = sender.wait(), receiver.wait()
    why_send, why_receive, landed = send_err.text(), got_err.text(), got_out.text()
    if sent == 3:
        raise refuse(f"{source} does not exist", "check the path (make exec lists folders)")
    if refused:
        raise refuse(f"copy of {source} refused: {refused}",
                     f"nothing was written to {target}")
    if received == 4:
        raise refuse(f"cannot receive in {target}: {why_receive}",
                     "choose another folder or remove the link")
    if received not in (0, 3):  # 3: it got less than the whole stream, said below
        raise _failed(f"writing into {target} failed (exit {received}): "
                      f"{why_receive or 'no message'}")
    if sent != 0:
        raise _failed(f"reading {source} failed (exit {sent}): {why_send or 'no message'}")
    if broken:
        raise _failed(broken)
    if received != 0 or not landed:
        raise _failed(f"writing into {target} failed (exit {received}): "
                      f"{why_receive or 'no message'}")
    return Report(landed, files)
