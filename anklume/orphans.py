"""Find and clean generated files whose domain or machine left infra.yml.

Only files with a managed section are ours. A domain or machine is protected
when its own managed section says ``ephemeral: false`` (or cannot be read):
deleting it then needs ``--force``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from anklume import managed, writer
from anklume.errors import InputError, OutputError, Problem

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DIRS = {"inventory": "domain", "group_vars": "domain", "host_vars": "machine"}


@dataclass(frozen=True)
class Orphan:
    rel: str
    kind: str
    name: str
    protected: bool

    def describe(self) -> str:
        why = ("protected: use FORCE=1 with make sync-clean" if self.protected
               else "ephemeral: make sync-clean deletes it")
        return f"orphan: {self.rel} ({self.kind} {self.name}, {why})"


def _managed_vars(path: str, rel: str) -> dict[str, Any] | None:
    text = writer.read(path, rel)
    if text is None:
        return None
    try:
        parts = managed.split(text, rel)
    except InputError:
        return {}
    if parts is None:
        return None
    try:
        data = yaml.load(parts.body, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def find(outdir: str, expected: Iterable[str]) -> list[Orphan]:
    """Managed files under ``outdir`` that ``expected`` no longer lists."""
    keep = set(expected)
    found: list[Orphan] = []
    for sub, kind in DIRS.items():
        try:
            names = sorted(os.listdir(os.path.join(outdir, sub)))
        except OSError:
            continue
        for fname in names:
            rel = f"{sub}/{fname}"
            path = os.path.join(outdir, rel)
            if not fname.endswith(".yml") or rel in keep or fname == "all.yml" \
                    or not os.path.isfile(path):
                continue
            data = _managed_vars(path, rel)
            if data is None:
                continue  # not ours: the user's own file
            name = fname[: -len(".yml")]
            if sub == "host_vars":
                flag = data.get("instance_ephemeral")
            elif sub == "group_vars":
                flag = data.get("anklume_domain_ephemeral")
            else:  # inventory carries no variables: ask the domain's group_vars
                gv = _managed_vars(os.path.join(outdir, "group_vars", fname), rel) or {}
                flag = gv.get("anklume_domain_ephemeral")
            found.append(Orphan(rel, kind, name, protected=flag is not True))
    return found


def clean(outdir: str, orphans: Iterable[Orphan], force: bool) -> tuple[list[Orphan],
                                                                       list[Orphan]]:
    """Delete orphans (protected ones only with ``force``); return (deleted, kept)."""
    deleted: list[Orphan] = []
    kept: list[Orphan] = []
    for o in orphans:
        if o.protected and not force:
            kept.append(o)
            continue
        try:
            os.unlink(os.path.join(outdir, o.rel))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError([Problem(o.rel, None, "", f"cannot delete: {exc.strerror or exc}",
                                       "check its permissions")]) from None
        deleted.append(o)
    return deleted, kept
