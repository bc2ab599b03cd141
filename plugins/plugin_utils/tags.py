# SPDX-License-Identifier: AGPL-3.0-or-later
"""Whether a run's --tags and --skip-tags select a step, by Ansible's own rules, for the
tasks that run several steps in one (reconcile_roles, ADR-081; the prune steps)."""

from __future__ import annotations

from collections.abc import Iterable


def selected(tags: Iterable[str], only: Iterable[str], skip: Iterable[str]) -> bool:
    """Whether a task with TAGS runs under --tags ONLY and --skip-tags SKIP (Ansible's
    Taggable.evaluate_tags; no tags at all is `untagged`)."""
    tags, only, skip = set(tags) or {"untagged"}, set(only), set(skip)
    tagged = tags != {"untagged"}
    run = (not only or "always" in tags or ("all" in only and "never" not in tags)
           or not tags.isdisjoint(only) or ("tagged" in only and tagged and "never" not in tags))
    if run and skip:
        if "all" in skip:
            run = "always" in tags and "always" not in skip
        elif not tags.isdisjoint(skip) or ("tagged" in skip and tagged):
            run = False
    return run
