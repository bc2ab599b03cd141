"""The check a copied tree passes on its way (ADR-085): a tar stream in, a clean one out.

:class:`Filter` reads a tar stream member by member (tarfile's stream mode: nothing is
held but the current block) and writes each member that passes again, rebuilt from its
name, type, permission bits, mtime and content only: owner root (uid/gid 0), no
set-user-ID, set-group-ID or sticky bit, no extended attributes or ACLs. Every regular
file's size and sha256 are taken as its bytes pass.

Members all lie under ROOT (the copied file or folder's name) and are renamed under
:data:`PAYLOAD`; after the last one :meth:`Filter.finish` adds the empty file
:data:`DONE`. The receiving side moves PAYLOAD into place only when DONE arrived, so a
stream cut at a refused member leaves nothing behind.

Refused (:class:`Refused`, the first bad member stops the copy): an absolute name, a name
with `..`, `.` or an empty component, a name outside ROOT, a name seen twice, a member
whose folder was not a folder member before it (so nothing is ever written through a
symbolic link); a symbolic link that is absolute or climbs out of the tree (its leading
`..` may reach ROOT at most, and no `..` may follow a name: a link in the path could
make that climb elsewhere); a hard link to anything but a regular file of the tree seen
before; a device, a fifo or any other special file; ROOT itself as a link.
"""

from __future__ import annotations

import hashlib
import tarfile
from typing import IO, NamedTuple

PAYLOAD = "payload"
DONE = "done"
# rwx for user, group and others: the special bits never make it across.
MODE_BITS = 0o777

_SPECIAL = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
            tarfile.FIFOTYPE: "a fifo"}


class Refused(Exception):
    """A member that must not be copied; the message says which and why."""


class File(NamedTuple):
    """One regular file copied: its path (under the copied name), size and sha256."""

    path: str
    size: int
    sha256: str


class _Hashing:
    """A file object that counts and hashes what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


class _Gate:
    """The sink, until cut: then what tarfile still writes (its buffer, when the stream is
    collected) goes nowhere."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.cut = sink, False

    def write(self, data: bytes) -> int:
        if not self.cut:
            self.sink.write(data)
        return len(data)


def _parts(name: str, what: str) -> list[str]:
    if name.startswith("/"):
        raise Refused(f"{what} is an absolute name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Refused(f"{what} has a '..', '.' or empty component")
    return parts


def _link_target(parts: list[str], target: str, what: str) -> None:
    """A symbolic link at PARTS (ROOT first) to TARGET must stay inside ROOT."""
    if not target or target.startswith("/"):
        raise Refused(f"{what} is a symbolic link to the absolute path {target!r}")
    steps = [p for p in target.split("/") if p not in ("", ".")]
    ups = 0
    while ups < len(steps) and steps[ups] == "..":
        ups += 1
    if ".." in steps[ups:] or ups > len(parts) - 2:
        raise Refused(f"{what} is a symbolic link to {target!r}, out of the copied tree")


class Filter:
    """Check the members of one tar stream and write them again, clean, to SINK."""

    def __init__(self, sink: IO[bytes], root: str) -> None:
        self.root = root
        self.gate = _Gate(sink)
        # Closed by finish(); a refused stream is never closed (no end of archive).
        self.out = tarfile.open(  # noqa: SIM115
            fileobj=self.gate, mode="w|", format=tarfile.GNU_FORMAT)  # type: ignore[call-overload]
        self.kinds: dict[str, str] = {}  # member name -> "dir", "file", "link"
        self.files: list[File] = []
        self.by_name: dict[str, File] = {}

    def copy(self, source: IO[bytes]) -> list[File]:
        """Every member of SOURCE, checked and written; the regular files copied.
        tarfile.ReadError when SOURCE is no tar stream at all. On any error the output is
        cut where it stands: nothing more reaches the sink, the end of the archive never."""
        try:
            return self._copy(source)
        except BaseException:
            self.gate.cut = True
            raise

    def _copy(self, source: IO[bytes]) -> list[File]:
        with tarfile.open(fileobj=source, mode="r|") as stream:
            for member in stream:
                clean = self.check(member)
                if member.isreg():
                    raw = stream.extractfile(member)
                    assert raw is not None
                    hashing = _Hashing(raw)
                    self.out.addfile(clean, hashing)  # type: ignore[arg-type,unused-ignore]
                    self.by_name[member.name] = File(member.name, hashing.size,
                                                     hashing.hash.hexdigest())
                    self.files.append(self.by_name[member.name])
                else:
                    self.out.addfile(clean)
        if not self.kinds:
            raise Refused("the stream holds no member")
        return self.files

    def check(self, m: tarfile.TarInfo) -> tarfile.TarInfo:
        """The clean copy of member M; Refused when it must not be copied."""
        what = f"{m.name!r}"
        parts = _parts(m.name, what)
        if parts[0] != self.root:
            raise Refused(f"{what} lies outside the copied {self.root!r}")
        if m.name in self.kinds:
            raise Refused(f"{what} appears twice in the stream")
        parent = "/".join(parts[:-1])
        if parent and self.kinds.get(parent) != "dir":
            raise Refused(f"{what} does not come after its folder (or its folder is a link)")
        clean = tarfile.TarInfo(self._renamed(m.name))
        clean.mode = m.mode & MODE_BITS
        clean.mtime = int(m.mtime)
        clean.uid = clean.gid = 0
        clean.uname = clean.gname = "root"
        if m.isreg():
            clean.type, clean.size, kind = tarfile.REGTYPE, m.size, "file"
        elif m.isdir():
            clean.type, kind = tarfile.DIRTYPE, "dir"
        elif m.issym():
            if len(parts) == 1:
                raise Refused(f"{what} is itself a symbolic link: copy what it points to")
            _link_target(parts, m.linkname, what)
            clean.type, clean.linkname, kind = tarfile.SYMTYPE, m.linkname, "link"
        elif m.islnk():
            if len(parts) == 1 or self.kinds.get(m.linkname) != "file":
                raise Refused(f"{what} is a hard link to {m.linkname!r}, not a file of the "
                              "copied tree")
            clean.type, clean.linkname, kind = (tarfile.LNKTYPE, self._renamed(m.linkname),
                                                "file")
            first = self.by_name[m.linkname]  # the same file under a second name
            self.by_name[m.name] = File(m.name, first.size, first.sha256)
            self.files.append(self.by_name[m.name])
        else:
            raise Refused(f"{what} is {_SPECIAL.get(m.type, 'a special file')}")
        self.kinds[m.name] = kind
        return clean

    def _renamed(self, name: str) -> str:
        return PAYLOAD + name[len(self.root):]

    def finish(self) -> None:
        """Mark the stream complete (DONE) and end it; call only when every member passed
        and the source ended well."""
        done = tarfile.TarInfo(DONE)
        done.mode, done.uname, done.gname = 0o600, "root", "root"
        try:
            self.out.addfile(done)
            self.out.close()
        except BaseException:
            self.gate.cut = True
            raise
