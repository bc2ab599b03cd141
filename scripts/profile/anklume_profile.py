# SPDX-License-Identifier: AGPL-3.0-or-later
"""Where the seconds of one ansible-playbook run go: per play, per task, per host.

An aggregate callback loaded only by scripts/profile_apply.py (ANSIBLE_CALLBACK_PLUGINS
names this folder, ANSIBLE_CALLBACKS_ENABLED adds it): it writes JSON to the file named by
ANKLUME_PROFILE_OUT at the end of the run. A task's wall time runs from its start to the
next task's start (what the user waits for, Ansible's own work between tasks included);
a host's time on a task, from the runner's start to its result on that host.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no types
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "anklume_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()
        self.plays: list[dict[str, Any]] = []
        self.task: dict[str, Any] | None = None
        self.running: dict[tuple[str, str], float] = {}

    def _close_task(self, now: float) -> None:
        if self.task is not None:
            self.task["wall"] = round(now - self.task.pop("_start"), 4)
            self.task = None

    def v2_playbook_on_play_start(self, play: Any) -> None:
        now = time.monotonic()
        self._close_task(now)
        if self.plays:
            self.plays[-1]["wall"] = round(now - self.plays[-1].pop("_start"), 4)
        self.plays.append({"name": play.get_name(), "_start": now, "tasks": []})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        now = time.monotonic()
        self._close_task(now)
        role = task._role.get_name() if task._role else ""
        self.task = {"name": task.get_name(), "role": role, "action": task.action,
                     "_start": now, "hosts": {}}
        self.plays[-1]["tasks"].append(self.task)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self.running[(host.get_name(), task._uuid)] = time.monotonic()

    def _done(self, result: Any, status: str) -> None:
        key = (result._host.get_name(), result._task._uuid)
        began = self.running.pop(key, None)
        if self.task is not None and began is not None:
            self.task["hosts"][key[0]] = [round(time.monotonic() - began, 4), status]

    def v2_runner_on_ok(self, result: Any) -> None:
        self._done(result, "ok")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._done(result, "skipped")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._done(result, "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        now = time.monotonic()
        self._close_task(now)
        if self.plays and "_start" in self.plays[-1]:
            self.plays[-1]["wall"] = round(now - self.plays[-1].pop("_start"), 4)
        out = os.environ.get("ANKLUME_PROFILE_OUT")
        if out:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump({"wall": round(now - self.start, 4), "plays": self.plays}, handle)
