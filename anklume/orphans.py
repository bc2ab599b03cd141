"""Find and clean generated files whose domain or machine left infra.yml.

Only files with a managed section are ours. A domain or machine is protected
when its own managed section says ``ephemeral: false`` (or cannot be read):
deleting it then needs ``--force``.

Inventory files are the exception (ADR-053): Ansible acts on every host they
list, so an orphan one leaves the inventory at each sync. It holds nothing but
its generated section, so nothing of the user's is lost; one that holds the
user's own lines stops the sync instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from anklume import managed, writer, yamlload
from anklume.errors import InputError, OutputError, Problem

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
        data = yamlload.plain(parts.body)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _template_group(data: dict[str, Any], name: str) -> bool:
    """An inventory file of a domain template: its group holds child groups, no hosts."""
    children = data.get("all", {}).get("children") if isinstance(data.get("all"), dict) else None
    group = children.get(name) if isinstance(children, dict) else None
    return isinstance(group, dict) and "children" in group and "hosts" not in group


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
            what = "template" if sub == "inventory" and _template_group(data, name) else kind
            found.append(Orphan(rel, what, name, protected=flag is not True))
    return found


def _generated_only(parts: managed.Split | None) -> bool:
    """True when a file holds nothing but its managed section (and the header we wrote)."""
    if parts is None:
        return False
    before = parts.before.strip()
    return before in ("", "---") and not parts.after.strip()


def stale_inventory(outdir: str, found: Iterable[Orphan]) -> list[Orphan]:
    """The orphan inventory files sync removes; raise before any write when one of them
    holds the user's own lines (Ansible would still act on its hosts)."""
    stale: list[Orphan] = []
    problems: list[Problem] = []
    for o in found:
        if o.kind not in ("domain", "template") or not o.rel.startswith("inventory/"):
            continue
        text = writer.read(os.path.join(outdir, o.rel), o.rel) or ""
        try:
            parts = managed.split(text, o.rel)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if _generated_only(parts):
            stale.append(o)
        else:
            problems.append(Problem(
                o.rel, None, "", f"domain {o.name} is no longer in infra.yml but this inventory "
                "file holds lines of yours outside the managed section, so Ansible would still "
                "act on its hosts", "move your lines elsewhere and delete the file"))
    if problems:
        raise InputError(problems)
    return stale


def retire(outdir: str, stale: Iterable[Orphan]) -> list[Orphan]:
    """Delete the stale inventory files; return them."""
    done = list(stale)
    clean(outdir, done, force=True)
    return done


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
