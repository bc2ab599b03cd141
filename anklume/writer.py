"""Plan, diff and atomically write the generated files."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from anklume import managed
from anklume.errors import InputError, OutputError, Problem

ENCODING = "utf-8"
ERRORS = "surrogateescape"  # any byte the user wrote survives a round trip


@dataclass(frozen=True)
class Change:
    """One file whose content must change (``old`` is None for a new file)."""

    rel: str
    old: str | None
    new: str


def read(path: str, display: str) -> str | None:
    """Text of ``path`` (None when missing), bytes preserved via surrogateescape."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(ENCODING, ERRORS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError([Problem(display, None, "", f"cannot read: {exc.strerror or exc}",
                                   "check the file and its permissions")]) from None


def plan(outdir: str, bodies: Mapping[str, str]) -> tuple[list[Change], list[str]]:
    """Changes needed to bring ``outdir`` to ``bodies``, and the files already up to date."""
    changes: list[Change] = []
    unchanged: list[str] = []
    problems: list[Problem] = []
    for rel, body in bodies.items():
        old = read(os.path.join(outdir, rel), rel)
        try:
            new = managed.merge(old, body, rel)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if new == old:
            unchanged.append(rel)
        else:
            changes.append(Change(rel, old, new))
    if problems:
        raise InputError(problems)
    return changes, unchanged


def diff(changes: Iterable[Change]) -> str:
    """Unified diff of ``changes`` (``a/`` = on disk, ``b/`` = after sync)."""
    out: list[str] = []
    for c in changes:
        old = [] if c.old is None else c.old.splitlines(keepends=True)
        fromfile = "/dev/null" if c.old is None else f"a/{c.rel}"
        for line in difflib.unified_diff(old, c.new.splitlines(keepends=True),
                                         fromfile, f"b/{c.rel}"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, text: str, display: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory + os.replace."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as exc:
        raise OutputError([Problem(display, None, "", f"cannot write: {exc.strerror or exc}",
                                   "check the output directory and its permissions")]) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode(ENCODING, ERRORS))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError([Problem(display, None, "", f"cannot write: {exc.strerror or exc}",
                                       "check the output directory and its permissions")]) \
                from None
        raise


def apply(outdir: str, changes: Iterable[Change]) -> int:
    """Write every change; return how many files were written."""
    count = 0
    for c in changes:
        atomic_write(os.path.join(outdir, c.rel), c.new, c.rel)
        count += 1
    return count
