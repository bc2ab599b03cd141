#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Read, in one call inside an instance, whether the state a role manages has drifted."""

from __future__ import annotations

DOCUMENTATION = r"""
module: state_probe
short_description: Say in one call whether the state a provisioning role manages has drifted
description:
  - Runs inside an instance and reads, without changing anything, the state that a role
    declares (packages, generated locales, lines in files, links, files, directories,
    command outputs). It returns one line per difference in RV(drift).
  - A role calls it first and runs its converging tasks only when RV(drift) is not empty
    (ADR-058), so a no-op run costs one C(incus exec) per role instead of one per task,
    and a drifted package or setting is still repaired by the role's own tasks.
  - The checks follow the semantics of the modules that converge them
    (M(ansible.builtin.apt) C(state=present), M(community.general.locale_gen),
    M(ansible.builtin.lineinfile), M(ansible.builtin.file) C(state=link),
    M(ansible.builtin.copy)); a role must list every state its tasks manage.
version_added: 0.1.0
author: AnKLuMe contributors (!UNKNOWN)
attributes:
  check_mode: {support: full, description: Reads only; check mode runs the same reads.}
  diff_mode: {support: none, description: "Nothing changes, so there is no diff."}
  platform: {platforms: [debian], support: full, description: Debian-family instances (dpkg).}
options:
  packages:
    description: Debian packages that must be installed (C(dpkg-query) status C(installed)).
    type: list
    elements: str
    default: []
  locales:
    description: Locales that must be generated, as C(locale -a) lists them (case and dashes ignored).
    type: list
    elements: str
    default: []
  lines:
    description: Lines that must be in files, with M(ansible.builtin.lineinfile) semantics.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The file., type: path, required: true}
      regexp:
        description: "The last line matching it must equal O(lines[].line); when none matches, O(lines[].line) must be present."
        type: str
        required: true
      line: {description: The line., type: str, required: true}
      owner: {description: Owner name the file must have., type: str}
      group: {description: Group name the file must have., type: str}
      mode: {description: Octal mode the file must have (a string such as V(0644))., type: str}
  links:
    description: "Symbolic links that must point exactly at O(links[].src)."
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The link., type: path, required: true}
      src: {description: Its target., type: str, required: true}
  files:
    description: Regular files that must exist (following links), optionally with a content checksum and attributes.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The file., type: path, required: true}
      sha256: {description: SHA-256 of the content it must have., type: str}
      owner: {description: Owner name., type: str}
      group: {description: Group name., type: str}
      mode: {description: Octal mode (a string such as V(0755))., type: str}
  directories:
    description: Directories that must exist with these attributes.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The directory., type: path, required: true}
      owner: {description: Owner name., type: str}
      group: {description: Group name., type: str}
      mode: {description: Octal mode (a string such as V(0711))., type: str}
  commands:
    description: "Commands whose standard output, stripped, must equal O(commands[].stdout). They must only read."
    type: list
    elements: dict
    default: []
    suboptions:
      argv: {description: The command and its arguments., type: list, elements: str, required: true}
      stdout: {description: The expected output., type: str, required: true}
  force:
    description: Report drift whatever the state (C(make apply FULL=1), or a role asked to refresh a cache).
    type: bool
    default: false
  roles:
    description:
      - Instead of the options above, run the probe each of these roles starts with (the
        first task of its C(tasks/main.yml)), all in the same one call (ADR-078). The
        arguments are taken from the role and templated with its defaults and vars under
        the host's variables.
      - RV(apply) then lists the roles to apply, in order, from the first one that drifted
        or does not start with a probe (a collection's role, or one without a probe).
      - Read by the action plugin on the controller; the module itself refuses it.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Read the state base_system manages
  anklume.incus.state_probe:
    packages: [locales, tzdata]
    locales: [en_US.UTF-8]
    lines: [{path: /etc/default/locale, regexp: "^LANG=", line: LANG=en_US.UTF-8, mode: "0644"}]
    links: [{path: /etc/localtime, src: /usr/share/zoneinfo/Etc/UTC}]
  register: state
- name: Converge only on drift
  ansible.builtin.include_tasks: converge.yml
  when: state.drift | length > 0
"""

RETURN = r"""
drift:
  description: One line per difference; empty when the instance already holds the state. With O(roles), a mapping of each probed role to its lines.
  type: raw
  returned: always
apply: {description: "With O(roles), the roles to apply, in order.", type: list, elements: str, returned: when O(roles) is given}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.anklume.incus.plugins.module_utils.state_probe import probe

_LINE = {"path": {"type": "path", "required": True}, "regexp": {"type": "str", "required": True},
         "line": {"type": "str", "required": True}, "owner": {"type": "str"},
         "group": {"type": "str"}, "mode": {"type": "str"}}
_ATTRS = {"owner": {"type": "str"}, "group": {"type": "str"}, "mode": {"type": "str"}}

ARGUMENT_SPEC = {
    "packages": {"type": "list", "elements": "str", "default": []},
    "locales": {"type": "list", "elements": "str", "default": []},
    "lines": {"type": "list", "elements": "dict", "default": [], "options": _LINE},
    "links": {"type": "list", "elements": "dict", "default": [],
              "options": {"path": {"type": "path", "required": True},
                          "src": {"type": "str", "required": True}}},
    "files": {"type": "list", "elements": "dict", "default": [],
              "options": {"path": {"type": "path", "required": True}, "sha256": {"type": "str"},
                          **_ATTRS}},
    "directories": {"type": "list", "elements": "dict", "default": [],
                    "options": {"path": {"type": "path", "required": True}, **_ATTRS}},
    "commands": {"type": "list", "elements": "dict", "default": [],
                 "options": {"argv": {"type": "list", "elements": "str", "required": True},
                             "stdout": {"type": "str", "required": True}}},
    "force": {"type": "bool", "default": False},
    "roles": {"type": "list", "elements": "str"},
}


def main(module: Any = None, client: Any = None) -> None:
    """Run as a module (its action plugin runs module_utils/state_probe.py in the instance
    instead, ADR-058); the shape of every main(), CLIENT unused: the probe reads no Incus."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["roles"] is not None:
        module.fail_json(msg="roles is read on the controller, by the action plugin only")
    module.exit_json(changed=False, drift=probe(module.params))


if __name__ == "__main__":
    main()
