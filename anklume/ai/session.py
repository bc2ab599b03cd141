"""The session log: one directory per session, every text redacted before it is written.

``<session_dir>/<UTC timestamp>-<slug>/`` holds the settings, each test output, each
prompt, reply and patch, and ``decisions.log``: what the loop decided and why, in order.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable


def slugify(text: str, limit: int = 40) -> str:
    """``Fix the greeting!`` -> ``fix-the-greeting``; never empty."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "session"


class SessionLog:
    """Write-only record of one session."""

    def __init__(self, root: str, slug: str, redact: Callable[[str], str]) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = os.path.join(root, f"{stamp}-{slug}")
        path, n = base, 1
        while os.path.exists(path):  # two sessions in the same second
            n += 1
            path = f"{base}-{n}"
        os.makedirs(path)
        self.path = path
        self._redact = redact

    def write(self, name: str, text: str) -> str:
        """Store ``text`` (redacted) as ``name``; return its path."""
        target = os.path.join(self.path, name)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(self._redact(text))
        return target

    def decide(self, line: str) -> None:
        """Append one decision, timestamped, to decisions.log."""
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        with open(os.path.join(self.path, "decisions.log"), "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {self._redact(line)}\n")
