# SPDX-License-Identifier: AGPL-3.0-or-later
"""Arguments checked against a spec as Ansible checks them, copied in C (ADR-098).

Ansible's validator starts with a deep copy of what it is given. Templated arguments are
made of Ansible's tagged strings, lists and dicts, which Python's `copy.deepcopy` copies
one object at a time through their pickling hooks: in the 50-machine lab the infra
play's checks spent 0.1-0.3 s there, more than on anything but Incus's own answers. A
module run by Ansible gets its arguments as JSON; these checks get them the same way, so
the validator's copy is one JSON round trip in C, and what they check and return is
what such a module would see.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator, ValidationResult
from ansible.module_utils.errors import UnsupportedError


class JsonArgs(dict):  # type: ignore[type-arg]
    """Arguments made of JSON types only: copied (the validator's deep copy) through JSON."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        copied: dict[str, Any] = json.loads(json.dumps(self))
        return copied


def as_json(args: Mapping[str, Any]) -> dict[str, Any]:
    """ARGS as a module receives them: JSON types. Arguments JSON cannot carry are left as
    they are, and copied the slow way."""
    if isinstance(args, JsonArgs):
        return args
    try:
        return JsonArgs(json.loads(json.dumps(args)))
    except (TypeError, ValueError):
        return dict(args)


def validate(spec: Mapping[str, Any], args: Mapping[str, Any], **options: Any) -> ValidationResult:
    """ARGS (templated) checked against SPEC by Ansible's validator."""
    return ArgumentSpecValidator(dict(spec)).validate(as_json(args), **options)


def task_args(action: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What ActionBase.validate_argument_spec returns for ACTION's task: its arguments
    checked, coerced and completed with SPEC's defaults; a bad one raises Ansible's own
    message."""
    args = as_json(action._task.args)
    result = validate(spec, args)
    if result.error_messages:
        msg = result.errors.msg
        if isinstance(result.errors[0], UnsupportedError):
            msg = f"Unsupported parameters for ({action._load_name}) module: {msg}"
        raise AnsibleActionFail(msg, obj=action._task.args)
    checked: dict[str, Any] = {**args, **result.validated_parameters}
    return checked
