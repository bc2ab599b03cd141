# SPDX-License-Identifier: AGPL-3.0-or-later
"""Which instances a class-wide operation acts on: `make snapshot|restore DOMAIN=...`.

A selector names inventory groups, comma-separated: a domain (``student07``), a template
(``student``: the group of every domain it generated, ADR-060) or a shell pattern
(``student*``, ``student0[1-4]``). Only what a selector names is in scope, so restoring
the class never touches the admin domain unless the selector names it.

  anklume.incus.scope_hosts      groups, selector -> the hosts of every matching group
  anklume.incus.scope_unmatched  groups, selector -> the parts that match no group
  anklume.incus.tag_selected     steps, run tags, skip tags -> the steps they select
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.anklume.incus.plugins.plugin_utils.tags import selected

# Ansible's own groups: never a domain.
BUILTIN_GROUPS = ("all", "ungrouped")


def _parts(selector: str) -> list[str]:
    return [p.strip() for p in str(selector).split(",") if p.strip()]


def _matching(groups: Mapping[str, Sequence[str]], part: str) -> list[str]:
    return [g for g in sorted(groups) if g not in BUILTIN_GROUPS and fnmatch.fnmatchcase(g, part)]


def scope_hosts(groups: Mapping[str, Sequence[str]], selector: str) -> list[str]:
    """The hosts of every group a part of ``selector`` matches, sorted, each once."""
    hosts: set[str] = set()
    for part in _parts(selector):
        for group in _matching(groups, part):
            hosts.update(groups[group])
    return sorted(hosts)


def scope_unmatched(groups: Mapping[str, Sequence[str]], selector: str) -> list[str]:
    """The parts of ``selector`` that match no domain or template (a typo to report)."""
    return [p for p in _parts(selector) if not _matching(groups, p)]


def tag_selected(steps: Sequence[Mapping[str, Any]], run_tags: Sequence[str] | None,
                 skip_tags: Sequence[str] | None) -> list[Mapping[str, Any]]:
    """The STEPS (mappings with `tags`) that --tags RUN_TAGS and --skip-tags SKIP_TAGS
    select, by Ansible's rules (a looped task's steps, each as if it were a task)."""
    return [step for step in steps
            if selected(step.get("tags") or [], run_tags or ["all"], skip_tags or [])]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"scope_hosts": scope_hosts, "scope_unmatched": scope_unmatched,
                "tag_selected": tag_selected}
