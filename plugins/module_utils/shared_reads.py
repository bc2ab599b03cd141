# AnKLuMe: the bulk reads one playbook run shares between its tasks (ADR-077).
# SPDX-License-Identifier: AGPL-3.0-or-later
"""One read of each Incus bulk list per playbook run, shared by every task that asks again.

The anklume_reads callback names a folder in ``ANKLUME_SHARED_READS`` when the playbook
starts (and removes it at the end); the task workers inherit it. An answer to one of
:data:`SHARED` is kept there, and the next task's first ask of the same URL is served
from it, under three rules:

* **A write ends sharing.** The first write through any client of the run marks the
  folder: from then on every read is live, and no answer is kept. A no-op run shares all
  its bulk reads; a run that changes something reads as before once it has.
* **A client reads live the second time.** Each client is served a URL from the folder
  at most once: a module that asks again is polling (an address, a boot) and gets Incus's
  answer.
* **Answers age.** One older than :data:`MAX_AGE` seconds is not served.

Without the variable (scripts, unit tests, a module run through AnsiballZ) every read is
live.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

ENV = "ANKLUME_SHARED_READS"
# The lists the infrastructure checks and roles each read (exact URLs, local remote or not).
SHARED = ("/1.0", "/1.0/networks?recursion=1", "/1.0/projects?recursion=1",
          "/1.0/profiles?recursion=1&all-projects=true",
          "/1.0/instances?recursion=1&all-projects=true",
          "/1.0/instances?recursion=2&all-projects=true")
# A list with state answers the same list without it too (the instances' extra keys:
# state, snapshots, backups).
SUPERSET = {"/1.0/instances?recursion=1&all-projects=true":
            "/1.0/instances?recursion=2&all-projects=true"}
MAX_AGE = 60.0
WRITTEN = "written"


def _split(url: str) -> tuple[str, str]:
    """("remote:" or "", path) of a URL as IncusClient builds it."""
    if url.startswith("/"):
        return "", url
    remote, path = url.split(":", 1)
    return f"{remote}:", path


def _is_shared(url: str) -> bool:
    """``url`` is one of SHARED, on the local socket or behind ``remote:``."""
    return _split(url)[1] in SHARED


class SharedReads:
    """The run's folder of shared answers, as one client sees it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.served: set[str] = set()

    @classmethod
    def of_run(cls) -> SharedReads | None:
        folder = os.environ.get(ENV, "")
        return cls(folder) if folder and os.path.isdir(folder) else None

    def _open(self) -> bool:
        """Sharing still holds: the folder is there and nothing was written."""
        return os.path.isdir(self.folder) and not os.path.exists(
            os.path.join(self.folder, WRITTEN))

    def _path(self, url: str) -> str:
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        return os.path.join(self.folder, f"{digest}.json")

    def lookup(self, url: str) -> tuple[bool, Any]:
        """(True, answer) when ``url`` may be served from the folder, else (False, None)."""
        if not _is_shared(url) or url in self.served or not self._open():
            return False, None
        self.served.add(url)
        remote, path = _split(url)
        for candidate in (url, remote + SUPERSET[path]) if path in SUPERSET else (url,):
            try:
                with open(self._path(candidate), encoding="utf-8") as f:
                    kept = json.load(f)
            except (OSError, ValueError):
                continue
            if time.time() - kept["at"] <= MAX_AGE:
                return True, kept["answer"]
        return False, None

    def keep(self, url: str, answer: Any) -> None:
        """Keep a live answer for the next task, unless a write came first."""
        if not _is_shared(url) or not self._open():
            return
        self.served.add(url)  # this client's next ask is live
        path = self._path(url)
        tmp = f"{path}.{uuid.uuid4().hex}"
        try:
            # json.dumps, not json.dump: only the one-shot encoder is C (a list of 50
            # instances: 5 ms instead of 40).
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"at": time.time(), "answer": answer}))
            os.replace(tmp, path)
        except OSError:  # the folder went: the run is ending, nothing to share
            return

    def written(self) -> None:
        """A write is about to be made: end sharing for the rest of the run."""
        try:
            with open(os.path.join(self.folder, WRITTEN), "w", encoding="utf-8"):
                pass
        except OSError:
            return
