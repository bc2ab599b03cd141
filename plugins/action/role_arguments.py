# SPDX-License-Identifier: AGPL-3.0-or-later
"""role_arguments: the argument checks of several roles in one task (ADR-079).

Ansible checks a role's arguments in a task of its own before the role's first task
(30-70 ms on this 2-core machine, most of it the task itself). site.yml's infrastructure
play imports eight roles with `rolespec_validate: false` and runs this once instead: each
role's `main` entry point, from its meta/argument_specs.yml, against the same variables
and with the same validator as Ansible's own check.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args
from ansible_collections.anklume.incus.plugins.plugin_utils.role_files import (
    load_main,
    role_folder,
)

_UNSET = object()


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        roles = self._task.args.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            result.update(failed=True, msg="role_arguments: roles must be a list of role names")
            return result
        errors: list[str] = []
        for role in roles:
            options, defaults = self._options(role)
            # A value still the role's own default is the spec's default (test_defaults pins
            # one to the other): what is checked is what the play, inventory or -e set.
            given = self._templar.template(
                {name: task_vars[name] for name in options
                 if name in task_vars and task_vars[name] != defaults.get(name, _UNSET)})
            checked = checked_args.validate(self._as_checked(options, given), given,
                                            validate_role_argument_spec=True)
            errors += [f"role {role}: {msg}" for msg in checked.error_messages]
        if errors:
            result.update(failed=True, argument_errors=errors,
                          msg="Validation of arguments failed:\n" + "\n".join(errors))
            return result
        result.update(changed=False, msg=f"the arguments of {len(roles)} roles are valid")
        return result

    def _as_checked(self, options: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """OPTIONS as Ansible's own check sees them once it has templated its arguments, for
        what the check can tell apart: a value that is None is left alone when its
        templated default is None too ("{{ x | default(none) }}"). Other defaults are not
        needed: every option with a default is given (the role's defaults are the play's
        once it is imported, and test_defaults pins each spec default to them)."""
        checked = {}
        for name, option in options.items():
            option = {k: v for k, v in option.items() if k != "default"}
            if name in given and given[name] is None and "default" in options[name]:
                option["default"] = self._templar.template(options[name]["default"])
            checked[name] = option
        return checked

    def _options(self, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The options of ROLE's `main` entry point (none when it declares no spec), and
        its defaults/main.yml as written."""
        folder = role_folder(self._loader, role)
        if folder is None:
            raise AnsibleError(f"role_arguments: no role {role} in the roles folders")
        specs = load_main(self._loader, folder / "meta", stem="argument_specs")
        main = (specs.get("argument_specs") or {}).get("main") or {}
        return dict(main.get("options") or {}), dict(load_main(self._loader, folder / "defaults"))
