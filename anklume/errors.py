"""The one exception family for problems a user can fix.

Every user-facing problem is a :class:`Problem`: what is wrong, where (file,
line, dotted path) and how to fix it, rendered on one line. The CLI catches
:class:`AnklumeError` once, prints its problems and exits with its code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_IO = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Problem:
    """One problem, reported on one line."""

    file: str
    line: int | None
    path: str
    what: str
    fix: str

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        head = f"{where}: {self.path}: " if self.path else f"{where}: "
        text = f"{head}{self.what}"
        if self.fix:
            text += f"; {self.fix}"
        return " ".join(text.split("\n"))


class AnklumeError(Exception):
    """Base of every error caused by user input or the user's files."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class InputError(AnklumeError):
    """infra.yml (or a managed file) is missing, unreadable or invalid."""


class OutputError(AnklumeError):
    """A generated file could not be written or deleted."""

    exit_code = EXIT_IO


def guarded(work: Callable[[], int], interrupted: str) -> int:
    """Run an entry point's WORK: problems as their lines and exit code, Ctrl-C as
    INTERRUPTED (130), any other exception as one line (70); never a traceback."""
    try:
        return work()
    except AnklumeError as exc:
        for p in exc.problems:
            print(p.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return 130
    except Exception as exc:  # last-resort guard: a bug, still no traceback for users
        print(f"internal error: {type(exc).__name__}: {exc}; please report it", file=sys.stderr)
        return 70
