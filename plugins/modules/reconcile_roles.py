#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Run several one-task roles in one task (the work is its action plugin's)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: reconcile_roles
short_description: Run several one-task roles in one task, in the controller
description:
  - Runs, in order, the one task of each role in O(roles) whose tags the run selects, as
    that role would (ADR-081), and stops at the first that fails.
  - Each role's C(tasks/main.yml) must be one task of an C(anklume.incus) module that runs
    in the controller (ADR-013), with nothing beside it but C(name), C(vars) and C(run_once).
    Its arguments are templated with the role's defaults, under the task's variables,
    under O(vars), under the role's C(vars/main.yml), under the entry's O(roles[].vars), under the
    task's own C(vars), under extra variables.
  - A playbook that would import several such roles runs this once instead of one task
    per role; the roles stay whole for a direct use.
version_added: 0.1.0
author: AnKLuMe contributors (!UNKNOWN)
attributes:
  check_mode: {support: full, description: "Each role's module in check mode: it changes nothing and reports what it would do."}
  diff_mode: {support: full, description: "The roles' diffs, in order."}
  platform: {platforms: [posix], support: full, description: The controller.}
options:
  vars:
    description:
      - Variables for every role, templated once (as this task's argument), above the play's
        and host's variables and under each role's own.
    type: dict
    default: {}
  roles:
    description: The roles, in the order they run.
    type: list
    elements: dict
    required: true
    suboptions:
      role:
        description: The role's name, looked up in the playbook's C(roles/) folder, then C(roles_path).
        type: str
        required: true
      tags:
        description: "The role's tags: it runs when the run selects them (C(--tags), C(--skip-tags)), with the play's tags inherited."
        type: list
        elements: str
        default: []
      vars:
        description: Variables for this role only, as an import's C(vars).
        type: dict
        default: {}
"""

EXAMPLES = r"""
- name: Reconcile the bridges and the projects, in one task
  anklume.incus.reconcile_roles:
    roles:
      - role: incus_networks
        tags: [networks]
        vars: {incus_networks_domains: "{{ anklume_domains }}"}
      - role: incus_projects
        tags: [projects]
        vars: {incus_projects_domains: "{{ anklume_domains }}"}
  run_once: true
  tags: [networks, projects]
"""

RETURN = r"""
plan: {description: "The plan entries of every role that ran, in order (ADR-056).", type: list, elements: dict, returned: always}
roles: {description: "Each role that ran, to its module's own result.", type: dict, returned: always}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

ROLE_ENTRY = {"role": {"type": "str", "required": True},
              "tags": {"type": "list", "elements": "str", "default": []},
              "vars": {"type": "dict", "default": {}}}
ARGUMENT_SPEC = {"vars": {"type": "dict", "default": {}},
                 "roles": {"type": "list", "elements": "dict", "required": True,
                           "options": ROLE_ENTRY}}


def main(module: Any = None, client: Any = None) -> None:
    """The roles' files are on the controller: only the action plugin can read them."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="reconcile_roles runs on the controller, through its action plugin")


if __name__ == "__main__":
    main()
