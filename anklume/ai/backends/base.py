"""The one interface every backend implements: a request in, a reply holding a diff out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Request:
    """What a backend gets: the prompt (already redacted) and where the code is."""

    prompt: str
    repo: str
    files: tuple[str, ...]
    dry_run: bool
    env: Mapping[str, str]
    timeout: int


class BackendError(Exception):
    """The backend gave no reply. ``fatal``: retrying cannot help (unreachable, refused)."""

    def __init__(self, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


class Backend(Protocol):
    """Send the context, receive a reply; the loop extracts and checks the diff in it."""

    name: str

    def propose(self, request: Request) -> str:
        """The reply text: a unified diff, possibly with a few lines of explanation."""
