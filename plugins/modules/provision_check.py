#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Before provisioning, every host at once: ready? and from which role on must it apply?
(the work is its action plugin's)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provision_check
short_description: Check every instance to provision and read what its roles manage, in one task
description:
  - First the check of M(anklume.incus.incus_ready) (each instance declared, running and
    booted), then, for every ready host, the state probe its roles start with (ADR-058),
    read from each role and templated with that host's variables as the role would, run
    in the instance as one plain C(python3 -); the hosts side by side (ADR-082).
  - A probe whose answer fails (lost by C(incus exec), or an Incus error under load) is asked again, a little later, up to five times, since it only reads.
  - Never fails for a host. A host that is not ready, or whose probe cannot be templated or
    run, gets one line in RV(problems) saying what is wrong and how to fix it.
  - Runs on the controller (its action plugin); changes nothing, in check mode too.
version_added: 0.1.0
author: AnKLuMe contributors (!UNKNOWN)
attributes:
  check_mode: {support: full, description: Reads only; check mode runs the same probes.}
  diff_mode: {support: none, description: Nothing changes.}
  platform: {platforms: [posix], support: full, description: The controller.}
options:
  instances:
    description: The hosts to check (each host's roles are its C(instance_roles)).
    type: list
    elements: dict
    default: []
    suboptions:
      host: {description: Inventory host name., type: str, required: true}
      name: {description: Instance name., type: str, required: true}
      project: {description: Incus project., type: str, required: true}
      declared: {description: False when infra.yml (group_vars/all.yml) no longer declares the host., type: bool, default: true}
  remote: {description: The Incus remote the instances are on., type: str, default: local}
  timeout: {description: Seconds to wait for every instance to finish booting., type: int, default: 120}
  parallel: {description: "Instances probed at a time (anklume_incus_parallel, make PARALLEL=n).", type: int, default: 8}
  record:
    description:
      - As M(anklume.incus.incus_ready)'s O(anklume.incus.incus_ready#module:record)
        (containers seen booted since their last start are not asked again).
    type: str
    default: ""
  probed:
    description:
      - A JSON file that keeps each probed host's probe arguments (ADR-099). The next run
        starts each kept probe at once, before its host is templated and while the
        readiness check runs, and uses its answer when the probe templated in that run has
        the same arguments and the host was not booting; otherwise the probe runs as
        templated. Empty keeps nothing.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Check the hosts to provision, and read what their roles manage
  anklume.incus.provision_check:
    instances: [{host: pro-dev, name: pro-dev, project: pro}]
  delegate_to: localhost
  run_once: true
  register: ready
- name: Apply each host's roles from the first that drifted
  ansible.builtin.include_role:
    name: "{{ item }}"
  loop: "{{ ready.apply[inventory_hostname] | default([]) }}"
"""

RETURN = r"""
problems: {description: Host to a one-line reason it cannot be provisioned (absent when ready)., type: dict, returned: always}
ready: {description: Hosts that are ready and were probed., type: list, elements: str, returned: always}
drift: {description: "Host to role to its drift lines (an empty list: nothing drifted).", type: dict, returned: always}
apply: {description: "Host to the roles to apply, from the first that drifted or has no probe of its own.", type: dict, returned: always}
due: {description: "The hosts with a role to apply or a problem to report, in the order given.", type: list, elements: str, returned: always}
probes: {description: C(incus exec) boot probes run (the state probes not counted)., type: int, returned: always}
early: {description: "Hosts whose probe, started from the last run's arguments before templating, answered for this run.", type: int, returned: always}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "default": [], "options": {
        "host": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "project": {"type": "str", "required": True},
        "declared": {"type": "bool", "default": True},
    }},
    "remote": {"type": "str", "default": "local"},
    "timeout": {"type": "int", "default": 120},
    "parallel": {"type": "int", "default": 8},
    "record": {"type": "str", "default": ""},
    "probed": {"type": "str", "default": ""},
}


def main(module: Any = None, client: Any = None) -> None:
    """The roles' files are on the controller: only the action plugin can read them."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="provision_check runs on the controller, through its action plugin")


if __name__ == "__main__":
    main()
