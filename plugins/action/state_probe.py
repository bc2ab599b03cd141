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

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.plugin_utils.probe_exec import (
    interpreter,
    run_probes,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.role_files import (
    load_main,
    role_folder,
    role_variables,
)

PLUGINS = "ansible_collections.anklume.incus.plugins."
PROBE_ACTIONS = ("anklume.incus.state_probe", "state_probe")


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        spec = importlib.import_module(PLUGINS + "modules.state_probe").ARGUMENT_SPEC
        args = self.validate_argument_spec(argument_spec=spec)[1]
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
        """drift per probed role, and `apply`: the roles from the first one that drifted
        or has no probe of its own, in order (a role may build on what an earlier one
        converged, so every role after it runs and probes itself)."""
        probed: list[tuple[str, dict[str, Any]]] = []
        checked = ArgumentSpecValidator({k: v for k, v in spec.items() if k != "roles"})
        for role in roles:
            raw = self._role_probe(role, task_vars)
            if raw is None:
                break
            validated = checked.validate(raw)
            if validated.error_messages:
                raise ValueError(f"role {role}: its state probe: {validated.error_messages[0]}")
            probed.append((role, validated.validated_parameters))
        names = [role for role, _params in probed]
        drifts = self._probe([params for _role, params in probed], task_vars)
        drift = dict(zip(names, drifts, strict=True))
        first = next((i for i, role in enumerate(names) if drift[role]), len(names))
        return {"drift": drift, "apply": roles[first:]}

    def _role_probe(self, role: str, task_vars: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments of ROLE's probe, templated as the role would; None when the role
        does not start with one, is not a plain role of a roles folder, or depends on other
        roles (meta/main.yml): those run with it, and its probe does not read their state."""
        folder = role_folder(self._loader, role)
        if folder is None or load_main(self._loader, folder / "meta").get("dependencies"):
            return None
        tasks = load_main(self._loader, folder / "tasks", empty=[])
        first = tasks[0] if isinstance(tasks, list) and tasks else {}
        action = next((a for a in PROBE_ACTIONS if a in first), None)
        if action is None or "when" in first or not isinstance(first[action], dict):
            return None
        variables = role_variables(self._loader, self._task, folder, task_vars)
        templar = self._templar.copy_with_new_env(available_variables=variables)
        return dict(templar.template(first[action]))
