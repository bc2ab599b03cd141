"""What `make doctor`'s checks share: a finding, a repair, and the host as they read it.

The host is read through the tools a user has (``incus query``, ``nft``, the files under
/etc and /proc), each call with a time limit, so a remote that does not answer costs
seconds, never a hang. Answers are cached: several checks read ``/1.0``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anklume.ops import tree as trees

# The repository of this package: its plugins are imported from there (collections/).
REPO = Path(__file__).resolve().parents[2]
INCUS_DIR = "/var/lib/incus"
LXCFS_DIR = "/var/lib/incus-lxcfs"
# Seconds one incus call may take (a remote that drops packets would otherwise hang).
TIMEOUT = 10.0


@dataclass(frozen=True)
class Repair:
    """What FIX=1 runs (in the tree, as root) and the words it says once done."""

    argv: tuple[str, ...]
    says: str


@dataclass
class Finding:
    """One line of the report. ``fix`` is the command a user runs; ``repair`` what FIX=1
    runs for it (None: not safe to do unasked). ``skipped``: not checked because another
    check failed first (it says which)."""

    check: str
    ok: bool
    what: str
    why: str = ""
    fix: str = ""
    fixed: bool = False
    repair: Repair | None = None
    skipped: bool = False

    def as_json(self) -> dict[str, object]:
        return {"check": self.check, "ok": self.ok, "what": self.what, "why": self.why,
                "fix": self.fix, "fixed": self.fixed}


def ok(check: str, what: str) -> list[Finding]:
    return [Finding(check, True, what)]


def skipped(check: str, because: str) -> list[Finding]:
    return [Finding(check, False, f"not checked: {because}", skipped=True)]


def plain(value: object) -> str | None:
    """A variable of the tree as a plain string; None when absent or still a template."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return None if "{{" in text or "{%" in text else text


@dataclass
class Host:
    """The tree (None when it was never rendered) and the machine doctor runs on."""

    root: Path
    env: dict[str, str]
    python: str
    tree: trees.Tree | None
    tree_problem: str = ""
    infra: str = "infra.yml"
    euid: int = field(default_factory=os.geteuid)
    _cache: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)

    # --- where things are -------------------------------------------------------------
    @property
    def remote(self) -> str:
        return self.tree.remote if self.tree else "local"

    @property
    def local(self) -> bool:
        """Whether the tree's Incus runs on this machine (its host checks can be made)."""
        return self.remote == "local"

    @property
    def root_user(self) -> bool:
        return self.euid == 0

    @property
    def incus_dir(self) -> str:
        return self.env.get("INCUS_DIR") or INCUS_DIR

    @property
    def system_incus(self) -> bool:
        """The daemon `make host` starts (not one a test or a user pointed INCUS_DIR at)."""
        return os.path.realpath(self.incus_dir) == INCUS_DIR

    @property
    def lxcfs_dir(self) -> str:
        # Only for tests: a lab checks an lxcfs of its own, never the host's.
        return self.env.get("ANKLUME_LXCFS_DIR") or LXCFS_DIR

    def setting(self, name: str, default: str) -> str:
        """A variable of group_vars/all.yml (hand-written beside the managed section, or a
        role default): its value when plain, else DEFAULT."""
        raw = self.tree.raw.get(name) if self.tree else None
        return plain(raw) or default

    def hostvars(self, machine: str) -> dict[str, Any]:
        path = self.root / "host_vars" / f"{machine}.yml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # --- running things ---------------------------------------------------------------
    def call(self, argv: list[str], timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of ARGV run in the tree; 124 when it timed out."""
        try:
            proc = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, "", f"no answer within {timeout:.0f} s"
        except OSError as exc:
            return 127, "", str(exc)
        return proc.returncode, proc.stdout, proc.stderr

    def query(self, path: str, remote: str | None = None) -> tuple[Any, str]:
        """(decoded answer, "") of ``incus query [REMOTE:]PATH``, or (None, why not)."""
        remote = remote or self.remote
        key = (remote, path)
        if key not in self._cache:
            url = path if remote == "local" else f"{remote}:{path}"
            rc, out, err = self.call(["incus", "query", url])
            if rc == 0:
                try:
                    self._cache[key] = (json.loads(out) if out.strip() else None, "")
                except ValueError:
                    self._cache[key] = (None, f"not JSON: {out[:80]}")
            else:
                text = (err or out).strip().splitlines()
                self._cache[key] = (None, (text[-1] if text else f"exit {rc}")
                                    .removeprefix("Error: "))
        return self._cache[key]

    def server(self, remote: str | None = None) -> tuple[dict[str, Any], str]:
        """``/1.0`` of REMOTE (default the tree's): ({...}, "") or ({}, why it failed)."""
        found, err = self.query("/1.0", remote)
        return (found if isinstance(found, dict) else {}), err

    def answers(self) -> bool:
        """Whether the tree's Incus answers and trusts this client."""
        found, err = self.server()
        return not err and found.get("auth") == "trusted"

    def forget(self) -> None:
        """Drop what was read (after a repair, the checks read again)."""
        self._cache.clear()

    def plugin(self, name: str) -> Any:
        """One of our Ansible plugins (plugins/NAME, dotted), imported as Ansible does, so
        doctor reads the host with the very functions the playbooks use."""
        return plugin(name)


def plugin(name: str) -> Any:
    """One of our Ansible plugins (plugins/NAME, dotted), imported as Ansible does: a verb
    shares the collection's rules instead of keeping a copy."""
    base = str(REPO / "collections")
    if base not in sys.path:
        sys.path.insert(0, base)
    return importlib.import_module(f"ansible_collections.anklume.incus.plugins.{name}")
