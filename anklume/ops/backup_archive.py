"""The backup archive format (ADR-087, docs/backups.md), without Incus: write one, verify one.

An archive is a plain tar stream (POSIX pax, uncompressed: the instance exports inside are
zstd already) written and read in one pass, never seeked, so it can go through `age`
pipes. Every member is a regular file; ``manifest.json`` is the LAST member and holds the
size and sha256 of every member before it, in order. A stream of unknown length (an
``incus export``) is cut into members of CHUNK bytes (``<name>.0000``, ``.0001``...): a tar
header needs the size first, and a chunk is the most that is ever held in memory.

The sums catch a flipped byte, a truncated or reordered archive, a missing or extra member;
they are not a signature (anyone who can write the archive can rewrite the manifest): the
archive's authenticity is age's (or the storage's) business.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

FORMAT = "anklume-backup"
VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 32 * 1024 * 1024
READ = 1024 * 1024


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


class Writer:
    """Members appended to a tar stream, the manifest last (close). The tar headers are
    tarfile's own (TarInfo.tobuf, POSIX pax); the bytes are written straight to the stream,
    with tar's padding, so a chunk is copied once (tarfile's stream mode would copy it again
    in 16 KiB pieces)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._out = stream
        self._offset = 0
        self.members: list[Member] = []

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._offset += len(data)

    def _member(self, name: str, data: bytes | memoryview) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o600
        self._write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
        self._write(data)
        self._write(bytes(-len(data) % tarfile.BLOCKSIZE))

    def add_bytes(self, name: str, data: bytes) -> Member:
        self._member(name, data)
        member = Member(name, len(data), hashlib.sha256(data).hexdigest())
        self.members.append(member)
        return member

    def add_stream(self, name: str, stream: IO[bytes],
                   first: Callable[[], None] | None = None) -> tuple[int, int]:
        """STREAM (read to its end) as members NAME.0000, NAME.0001...; (chunks, bytes).
        Each chunk is summed as it is read (while the next bytes are still coming); FIRST
        is called once, when the first bytes arrived (never for an empty stream)."""
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        count = total = 0
        while True:
            digest = hashlib.sha256()
            filled = 0
            while filled < CHUNK:
                got = stream.readinto(view[filled:filled + READ])  # type: ignore[attr-defined]
                if not got:
                    break
                digest.update(view[filled:filled + got])
                filled += got
                if first is not None:
                    first()
                    first = None
            if not filled and count:
                break
            self._member(f"{name}.{count:04d}", view[:filled])
            self.members.append(Member(f"{name}.{count:04d}", filled, digest.hexdigest()))
            count += 1
            total += filled
            if filled < CHUNK:
                break
        return count, total

    def close(self, manifest: dict[str, Any]) -> None:
        """The manifest, then tar's end: two zero blocks, zeros up to a whole record."""
        body = {**manifest, "format": FORMAT, "version": VERSION,
                "members": [m.as_dict() for m in self.members]}
        data = json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"
        self._member(MANIFEST, data)
        self._write(bytes(2 * tarfile.BLOCKSIZE))
        self._write(bytes(-self._offset % tarfile.RECORDSIZE))


class Broken(Exception):
    """What is wrong with an archive: one line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def _safe(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts and "" not in parts


def _manifest(data: bytes) -> tuple[dict[str, Any], list[Member]]:
    """The manifest, read and checked on its own."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise Broken([f"{MANIFEST} is not JSON ({exc})"]) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Broken([f"{MANIFEST} is not an AnKLuMe backup manifest (format is not {FORMAT})"])
    if doc.get("version") != VERSION:
        raise Broken([f"{MANIFEST} is format version {doc.get('version')!r}; this AnKLuMe "
                      f"reads version {VERSION}"])
    members: list[Member] = []
    raw = doc.get("members")
    if not isinstance(raw, list):
        raise Broken([f"{MANIFEST} has no list of members"])
    for i, m in enumerate(raw):
        ok = (isinstance(m, dict) and isinstance(m.get("name"), str)
              and isinstance(m.get("size"), int) and isinstance(m.get("sha256"), str)
              and len(m["sha256"]) == 64 and _safe(m["name"]) and m["name"] != MANIFEST)
        if not ok:
            raise Broken([f"{MANIFEST}: member entry {i} is malformed ({str(m)[:80]})"])
        members.append(Member(m["name"], m["size"], m["sha256"]))
    if len({m.name for m in members}) != len(members):
        raise Broken([f"{MANIFEST} lists a member twice"])
    return doc, members


class _Counted:
    """A member's bytes as they are read, summed and counted on the way."""

    def __init__(self, src: IO[bytes]) -> None:
        self.src, self.size, self.digest = src, 0, hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        while data := self.src.read(READ):
            self.digest.update(data)
            self.size += len(data)
            yield data


@dataclass
class Reading:
    """One pass over an archive: what it held, and the manifest once it is read."""

    seen: list[Member] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def read(stream: IO[bytes], consume: Callable[[str, Iterator[bytes]], None] | None = None
         ) -> dict[str, Any]:
    """Read the archive from STREAM to its end, checking every member against the manifest;
    CONSUME(name, chunks) is handed each member's bytes as they are read (restore). Raises
    Broken with one line per problem; the checked manifest otherwise."""
    state = Reading()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if state.manifest is not None:
                    raise Broken([f"member {info.name} comes after {MANIFEST}: the archive "
                                  "has extra data"])
                if not info.isreg() or not _safe(info.name):
                    raise Broken([f"member {info.name} is not a plain file of a backup"])
                src = tar.extractfile(info)
                assert src is not None
                if info.name == MANIFEST:
                    state.manifest, listed = _manifest(src.read())
                    continue
                counted = _Counted(src)
                if consume is not None:
                    consume(info.name, iter(counted))
                for _ in counted:  # what the consumer left unread
                    pass
                state.seen.append(Member(info.name, counted.size, counted.digest.hexdigest()))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise Broken([f"the archive ends early or is not a tar stream ({exc}): it is "
                      "truncated or damaged"]) from None
    if state.manifest is None:
        raise Broken([f"no {MANIFEST} at the end: the archive is truncated or not a backup"])
    problems = compare(listed, state.seen)
    if problems:
        raise Broken(problems)
    return state.manifest


def compare(listed: list[Member], seen: list[Member]) -> list[str]:
    """One line per difference between the manifest and what the archive held."""
    problems: list[str] = []
    want = {m.name: m for m in listed}
    got = {m.name: m for m in seen}
    for m in seen:
        w = want.get(m.name)
        if w is None:
            problems.append(f"member {m.name} is not in {MANIFEST}: an extra member")
        elif w.size != m.size:
            problems.append(f"member {m.name} has {m.size} bytes, {MANIFEST} says {w.size}")
        elif w.sha256 != m.sha256:
            problems.append(f"member {m.name} does not match its sha256 in {MANIFEST}: "
                            "its content changed")
    for m in listed:
        if m.name not in got:
            problems.append(f"member {m.name} listed in {MANIFEST} is missing")
    if not problems and [m.name for m in listed] != [m.name for m in seen]:
        problems.append(f"the members are not in the order {MANIFEST} lists")
    return problems
