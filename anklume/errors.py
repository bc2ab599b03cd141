"""The one exception family for problems a user can fix.

Every user-facing problem is a :class:`Problem`: what is wrong, where (file,
line, dotted path) and how to fix it, rendered on one line. The CLI catches
:class:`AnklumeError` once, prints its problems and exits with its code.
"""

from __future__ import annotations

import os
import select
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
        # Every character that ends a line (\x1e and \u2028 too), so the problem is one line.
        return " ".join(text.splitlines())


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


def stdout_gone() -> bool:
    """True when nothing reads this process's standard output any more: the reader of its
    pipe went away (``| head -1``), or the stream or its descriptor is closed."""
    stream = sys.stdout
    if stream is None or stream.closed:
        return True
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # an in-memory stream (tests): never "gone"
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    gone = select.POLLERR | select.POLLHUP | select.POLLNVAL
    return any(events & gone for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at interpreter exit finds nothing to break on
    (Python would print "Exception ignored ... BrokenPipeError" and exit 120)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no stdout object, or closed in Python
        fd = 1
    devnull = os.open(os.devnull, os.O_WRONLY)  # it is fd 1 itself when fd 1 was closed
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)
    if sys.stdout is None or sys.stdout.closed:
        sys.stdout = open(fd, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


def pipe_safe(work: Callable[[], int | None]) -> int:
    """Run a script's WORK; when its reader goes away (``make sync-dry | head -1``), end
    quietly: no message, exit 0. Any other exception goes on to the caller."""
    if sys.stdout is None:  # started with stdout closed: write nowhere, do the work
        _silence_stdout()
    try:
        code = work()
        sys.stdout.flush()  # a broken pipe in the last buffer shows here, not at exit
        return code or 0
    except (OSError, ValueError):
        if not stdout_gone():
            raise
        _silence_stdout()
        return EXIT_OK


def guarded(work: Callable[[], int], interrupted: str) -> int:
    """Run an entry point's WORK: problems as their lines and exit code, Ctrl-C as
    INTERRUPTED (130), a reader of stdout gone as a quiet 0 (:func:`pipe_safe`), any other
    exception as one line (70); never a traceback."""
    try:
        return pipe_safe(work)
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
