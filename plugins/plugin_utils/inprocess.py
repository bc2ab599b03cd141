# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run an anklume Incus module inside the controller process (ADR-013).

The infra phase runs with a local connection, so executing the module through AnsiballZ
(package, fork a Python, import ansible.module_utils, ...) costs about 0.4 s a task on
this 2-core machine for the same work. These action plugins load the module file and call
its ``main()`` with a small stand-in for AnsibleModule instead: same argument spec, same
code, same result. Any other connection falls back to ordinary module execution.
"""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args

MODULES = "ansible_collections.anklume.incus.plugins.modules."


class _Done(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("module finished")
        self.result = result


class InProcessModule:
    """The part of AnsibleModule our modules use."""

    def __init__(self, params: dict[str, Any], check_mode: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def progress(self, msg: str) -> None:
        """A line shown at once while the task runs ("incus_instance: created 20/50").
        AnsibleModule has no such method: modules call it through getattr, so under
        AnsiballZ there is no progress line."""
        Display().display(msg)

    def exit_json(self, **kwargs: Any) -> NoReturn:
        raise _Done(kwargs)

    def fail_json(self, msg: str, **kwargs: Any) -> NoReturn:
        kwargs.update(failed=True, msg=msg)
        raise _Done(kwargs)


def module_code(name: str) -> Any:
    """The Python module of the anklume Incus module NAME (its ARGUMENT_SPEC and main)."""
    return importlib.import_module(MODULES + name)


def run_module(name: str, params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """The result of module NAME's main() on PARAMS (already checked against its spec),
    run in this process."""
    fake = InProcessModule(params, check_mode)
    try:
        module_code(name).main(fake)
        done = {"failed": True, "msg": f"{name} returned nothing"}
    except _Done as exc:
        done = exc.result
    if fake.warnings:
        done["warnings"] = fake.warnings
    if not diff:
        done.pop("diff", None)
    return done


class InProcessAction(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    """The action plugin of every anklume Incus module (plugins/action/inprocess.py, chosen
    for each of them by meta/runtime.yml): it runs the module the task names."""

    TRANSFERS_FILES = False
    _requires_connection = False

    @property
    def module_name(self) -> str:
        action = self._task.resolved_action or self._task.action
        return str(action).rsplit(".", 1)[-1]

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        name = self.module_name
        if self._connection.transport not in ("local", "ansible.builtin.local"):
            result.update(self._execute_module(module_name=f"anklume.incus.{name}",
                                               task_vars=task_vars))
            return result
        # A bad argument or list entry fails here with Ansible's own one-line message.
        args = checked_args.task_args(self, module_code(name).ARGUMENT_SPEC)
        result.update(run_module(name, args, bool(self._task.check_mode), bool(self._task.diff)))
        return result
