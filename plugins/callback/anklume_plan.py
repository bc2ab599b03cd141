# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402
"""Summarise the `plan` entries the anklume Incus modules return.

Enabled by `make plan` / `make apply` (ANSIBLE_CALLBACKS_ENABLED=anklume_plan). In check
mode it prints what apply would do; otherwise what apply did. The last line is a count:
``plan: 3 to create, 1 to change, 0 to remove, 2 orphans (PRUNE=1 removes)``.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: anklume_plan
type: aggregate
short_description: Print the anklume plan (objects to create, change, remove; orphans)
description:
  - Collects the C(plan) list that the incus_* modules return (ADR-056) and prints one
    line per object, then a one-line count.
requirements: []
author: AnKLuMe contributors (!UNKNOWN)
"""

import os
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

SYMBOL = {"create": "+", "change": "~", "remove": "-", "orphan": "?", "keep": "=",
          "foreign": "!", "conflict": "x", "deploy": ">", "info": "i"}


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core has no py.typed
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "anklume_plan"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []
        self.seen: set[tuple[Any, ...]] = set()
        self.summarise = False

    def v2_playbook_on_start(self, playbook: Any) -> None:
        # Only site.yml reconciles; other playbooks (snapshot.yml) print their own results.
        self.summarise = os.path.basename(playbook._file_name) == "site.yml"

    def _collect(self, result: Any) -> None:
        res = result._result
        items = list(res.get("plan") or [])
        for sub in res.get("results") or []:
            if isinstance(sub, dict):
                items += sub.get("plan") or []
        for entry in items:
            key = (entry.get("kind"), entry.get("name"), entry.get("action"),
                   tuple(entry.get("keys") or ()))
            if key not in self.seen:
                self.seen.add(key)
                self.entries.append(entry)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._collect(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._collect(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self.summarise:
            return
        check = bool(context.CLIARGS.get("check"))
        removed = {(e["kind"], e["name"], e.get("project")) for e in self.entries
                   if e["action"] == "remove"}
        entries = [e for e in self.entries
                   if not (e["action"] == "orphan"
                           and (e["kind"], e["name"], e.get("project")) in removed)]
        count = {a: sum(1 for e in entries if e["action"] == a)
                 for a in ("create", "change", "remove", "orphan", "keep")}
        label = "plan" if check else "apply"
        lines = []
        for e in entries:
            what = "{} {}".format(e["kind"], e["name"])
            if e["action"] == "unsupported":  # ADR-065: a VM this Incus cannot run
                what = e.get("reason") or what + " (Incus cannot run it here)"
            if e["action"] == "change":
                what += ": " + ", ".join(e.get("keys") or [])
            elif e["action"] == "create" and e.get("image"):
                what += f" (image {e['image']})"
            elif e["action"] == "orphan":
                # The project tells a moved machine's old instance from its new one; a
                # profile's name already starts with it.
                project = e.get("project")
                if project and not e["name"].startswith(f"{project}/"):
                    what += f" in project {project}"
                what += " (orphan: no longer in infra.yml)"
            elif e["action"] == "keep":
                what += " (kept)"
            elif e["action"] == "foreign":
                what += " (exists, not managed by anklume: left alone)"
            elif e["action"] == "conflict":
                what = e.get("reason") or what + " (not ours)"
            elif e["action"] == "info":
                what += f": {e.get('reason')}"
            elif e["action"] == "deploy":
                what += f" ({e.get('reason')})"
            lines.append("{}: {} {}".format(label, SYMBOL.get(e["action"], "*"), what))
        verbs = ("to create", "to change", "to remove") if check else \
            ("created", "changed", "removed")
        summary = (f"{label}: {count['create']} {verbs[0]}, {count['change']} {verbs[1]}, "
                   f"{count['remove']} {verbs[2]}, {count['orphan']} orphans (PRUNE=1 removes)")
        if count["keep"]:
            summary += f", {count['keep']} kept"
        conflicts = sum(1 for e in entries if e["action"] == "conflict")
        if conflicts:
            summary += (f", {conflicts} conflicts (objects that are not ours: stopped before "
                        "any change, ADR-021)")
        unsupported = sum(1 for e in entries if e["action"] == "unsupported")
        if unsupported:
            summary += f", {unsupported} VMs this Incus cannot run (stopped, ADR-065)"
        self._display.display("")
        for line in lines:
            self._display.display(line)
        self._display.display(summary)
