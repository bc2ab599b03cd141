# SPDX-License-Identifier: AGPL-3.0-or-later
"""state_probe in one plain `python3` call inside the instance (ADR-058, ADR-078).

A module task builds and unpacks an AnsiballZ payload: on this 2-core machine four hosts
cost about 0.9 s a task, against 0.2 s for a raw command. The probe needs none of it: its
arguments are checked here against the module's spec, then module_utils/state_probe.py,
which imports nothing from Ansible, runs as a script fed on stdin.

With `roles`, the probe each of those roles starts with (the first task of its
tasks/main.yml) is read from the role, templated here with the role's defaults and vars
under the host's, and all of them run in that one call (ADR-078).
"""

from __future__ import annotations

import importlib
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args
from ansible_collections.anklume.incus.plugins.plugin_utils.probe_exec import (
    interpreter,
    run_probes,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.role_probe import (
    RoleProbes,
    apply_from,
)

PLUGINS = "ansible_collections.anklume.incus.plugins."


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        spec = importlib.import_module(PLUGINS + "modules.state_probe").ARGUMENT_SPEC
        args = checked_args.task_args(self, spec)
        roles = args.pop("roles")
        if roles is not None and set(self._task.args) - {"roles"}:
            result.update(failed=True, msg="state_probe: roles goes alone (each role's "
                                           "probe says what to read)")
            return result
        try:
            if roles is None:
                drift = self._probe([args], task_vars)[0]
                result.update(changed=False, drift=drift)
                return result
            result.update(changed=False, **self._probe_roles(roles, spec, task_vars or {}))
        except (RuntimeError, ValueError) as exc:
            result.update(failed=True, msg=str(exc))
        return result

    def _probe(self, probes: list[dict[str, Any]],
               task_vars: dict[str, Any] | None) -> list[list[str]]:
        return run_probes(self._low_level_execute_command, probes, interpreter(task_vars))

    def _probe_roles(self, roles: list[str], spec: dict[str, Any],
                     task_vars: dict[str, Any]) -> dict[str, Any]:
        probed = RoleProbes(self._loader, self._task, self._templar, spec).probes(roles,
                                                                                  task_vars)
        drifts = self._probe([params for _role, params in probed], task_vars)
        return apply_from(roles, [role for role, _params in probed], drifts)
