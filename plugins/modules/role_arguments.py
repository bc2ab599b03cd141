#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Check the arguments of several roles in one task (the work is its action plugin's)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: role_arguments
short_description: Check the arguments of several roles in one task
description:
  - Validates, for each role in O(roles), the variables named by the C(main) entry point of
    its C(meta/argument_specs.yml) against that spec, with the validator Ansible's own role
    argument check uses (the same messages, each prefixed with the role's name).
  - A playbook that imports several roles with C(rolespec_validate=false) runs it once
    instead of one argument check per role (ADR-079); the roles keep their specs, so a
    direct use of a role is checked as before.
  - Runs on the controller (its action plugin); nothing is changed.
version_added: 0.1.0
author: AnKLuMe contributors (!UNKNOWN)
attributes:
  check_mode: {support: full, description: Reads only.}
  diff_mode: {support: none, description: "Nothing changes, so there is no diff."}
  platform: {platforms: [posix], support: full, description: The controller.}
options:
  roles:
    description: Role names, looked up in the playbook's C(roles/) folder, then C(roles_path).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Check the arguments of the roles below, in one task
  anklume.incus.role_arguments:
    roles: [incus_networks, incus_projects]
  run_once: true
"""

RETURN = r"""
argument_errors: {description: "One line per invalid argument, each naming its role.", type: list, elements: str, returned: failure}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = {"roles": {"type": "list", "elements": "str", "required": True}}


def main(module: Any = None, client: Any = None) -> None:
    """The roles' files are on the controller: only the action plugin can read them."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="role_arguments runs on the controller, through its action plugin")


if __name__ == "__main__":
    main()
