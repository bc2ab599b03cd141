"""Managed sections: the generated part of a file, between two marker lines.

Everything outside the markers belongs to the user and is kept byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from anklume.errors import InputError, Problem

START = ("# === ANKLUME MANAGED START: generated from infra.yml by `make sync`; "
         "edits inside are replaced ===")
END = "# === ANKLUME MANAGED END ==="
START_PREFIX = "# === ANKLUME MANAGED START"
END_PREFIX = "# === ANKLUME MANAGED END"
NEW_FILE_HEADER = "---\n"


@dataclass(frozen=True)
class Split:
    """A file cut around its managed section."""

    before: str
    body: str
    after: str


def section(body: str) -> str:
    """The managed section (markers included) wrapping ``body``."""
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{START}\n{body}{END}\n"


def _lines(text: str) -> list[str]:
    """Lines split on ``\n`` only (``str.splitlines`` also cuts on ``\r``, ``\x85``...)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def split(text: str, display: str) -> Split | None:
    """Cut ``text`` around its managed section; None when it has none.

    Raise :class:`InputError` when the markers are broken (two starts, an end
    without a start, a start without an end): we never guess what is whose.
    """
    if START_PREFIX not in text and END_PREFIX not in text:
        return None
    lines = _lines(text)
    start = end = -1
    problems: list[Problem] = []
    for i, line in enumerate(lines):
        if line.startswith(START_PREFIX):
            if start >= 0:
                problems.append(Problem(display, i + 1, "", "second managed START marker",
                                        "keep one managed section per file"))
            else:
                start = i
        elif line.startswith(END_PREFIX):
            if start < 0 or end >= 0:
                problems.append(Problem(display, i + 1, "", "managed END marker without a START "
                                        "before it", "restore the START line or delete this one"))
            else:
                end = i
    if start >= 0 and end < 0 and not problems:
        problems.append(Problem(display, start + 1, "", "managed START marker without an END",
                                f"add the line '{END}' after the generated content"))
    if problems:
        raise InputError(problems)
    if start < 0:
        return None
    return Split("".join(lines[:start]), "".join(lines[start + 1:end]), "".join(lines[end + 1:]))


def merge(existing: str | None, body: str, display: str) -> str:
    """New content of a file: ``existing`` with its managed section set to ``body``."""
    if existing is None:
        return NEW_FILE_HEADER + section(body)
    parts = split(existing, display)
    if parts is None:
        sep = "" if not existing or existing.endswith("\n") else "\n"
        return existing + sep + section(body)
    return parts.before + section(body) + parts.after
