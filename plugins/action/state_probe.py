# SPDX-License-Identifier: AGPL-3.0-or-later
"""state_probe in one plain `python3` call inside the instance (ADR-058).

A module task builds and unpacks an AnsiballZ payload: on this 2-core machine four hosts
cost about 0.9 s a task, against 0.2 s for a raw command. The probe needs none of it: its
arguments are checked here against the module's spec, then module_utils/state_probe.py,
which imports nothing from Ansible, runs as a script fed on stdin.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from ansible.plugins.action import ActionBase

PLUGINS = "ansible_collections.anklume.incus.plugins."
RUNNER = "\nimport json as _j\nprint(_j.dumps({{'drift': probe(_j.loads({args!r}))}}))\n"


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        module = importlib.import_module(PLUGINS + "modules.state_probe")
        args = self.validate_argument_spec(argument_spec=module.ARGUMENT_SPEC)[1]
        with open(str(importlib.import_module(PLUGINS + "module_utils.state_probe").__file__),
                  encoding="utf-8") as handle:
            script = handle.read() + RUNNER.format(args=json.dumps(args))
        python = (task_vars or {}).get("ansible_python_interpreter") or "/usr/bin/python3"
        if "{{" in str(python):
            python = "/usr/bin/python3"
        answer = self._low_level_execute_command(f"{python} -", in_data=script)
        try:
            drift = json.loads(answer["stdout"].strip().splitlines()[-1])["drift"]
        except (ValueError, KeyError, IndexError):
            last = (answer.get("stderr") or answer.get("stdout") or "no output").strip()
            result.update(failed=True, msg=f"state probe failed (exit {answer.get('rc')}): "
                                           f"{last.splitlines()[-1] if last else 'no output'}")
            return result
        result.update(changed=False, drift=drift)
        return result
