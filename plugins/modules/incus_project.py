#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Reconcile Incus projects and their default profile in bulk."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_project
short_description: Reconcile a set of Incus projects and their default profile
description:
  - Reads every project and profile with one query each, creates missing projects,
    sets the declared config keys, and makes each project's C(default) profile hold
    exactly the declared devices (root disk and eth0 on the domain bridge).
  - Projects carrying the anklume marker for O(owner) but no longer declared are
    orphans; O(state=pruned) deletes them when empty.
  - A declared project that carries the anklume marker with another O(owner) fails the
    task before anything is written (ADR-021); one without the marker is left alone.
  - Every result carries a RV(plan) list (ADR-056).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
  - anklume.incus.reconcile
options:
  projects:
    description: Projects to reconcile (or delete with O(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Project name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: "Project config keys (C(features.*), C(limits.*), ...).", type: dict, default: {}}
      default_devices: {description: Devices of the project's default profile., type: dict, default: {}}
  declared: {description: Every project the whole infra declares.}
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Reconcile the domain projects
  anklume.incus.incus_project:
    projects:
      - name: pro
        config: {features.images: "false", features.profiles: "true"}
        default_devices:
          root: {type: disk, path: /, pool: default}
          eth0: {type: nic, network: net-pro, name: eth0}
"""

RETURN = r"""
plan:
  description: One entry per project (and default profile) created, changed, removed, kept, left alone or orphaned.
  type: list
  elements: dict
  returned: always
  contains:
    kind: {description: "V(project), or V(profile) for a project's default profile.", type: str, returned: always}
    name: {description: "The project, or C(PROJECT/default).", type: str, returned: always}
    action:
      description: "V(create), V(change), V(remove), V(keep) (not empty), V(foreign) (not ours), V(orphan) or V(conflict)."
      type: str
      returned: always
    project: {description: The project of a default profile., type: str, returned: when kind is profile}
    keys: {description: The keys a change touches., type: list, elements: str, returned: when action is change}
    reason: {description: "The one-line reason of a conflict.", type: str, returned: when action is conflict}
  sample: [{kind: project, name: pro, action: create}]
orphans: {description: Managed projects no longer declared., type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: always}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    devices_changes,
    diff_entry,
    plan_entry,
    qname,
)
from ansible_collections.anklume.incus.plugins.module_utils.reconcile import (
    RECONCILE_OPTIONS,
    ObjectReconciler,
    run_module,
)

ARGUMENT_SPEC = dict(
    projects=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        config=dict(type="dict", default={}),
        default_devices=dict(type="dict", default={}),
    )),
    **RECONCILE_OPTIONS,
)


def project_leftovers(client, name):
    """What blocks a project's deletion: its instances and profiles but the default one."""
    return [url for url in client.get(f"/1.0/projects/{qname(name)}").get("used_by") or []
            if "/profiles/default" not in url]


class Projects(ObjectReconciler):
    KIND = "project"
    ITEMS = "projects"
    READING = "reading projects"
    DEVICES = "default_devices"

    def read(self):
        current = self.client.projects()
        # The default profiles, read only when a project exists at all.
        self.profiles = self.client.profiles() \
            if current and self.params["state"] == "present" else {}
        return current

    def may_be_orphan(self, key, obj):
        return key != "default"

    def create(self, spec):
        name = spec["name"]
        config, desc, devices = self.wanted(spec)
        self.change(self.entry(name, "create"),
                    diff_entry(f"project {name}", None, {"config": config, "description": desc,
                                                         "default_profile_devices": devices}))
        if self.check_mode:
            return
        self.step = f"creating project {name}"
        self.client.query("/1.0/projects", "POST", what=self.step,
                          data={"name": name, "description": desc, "config": config})
        self.step = f"setting the default profile of project {name}"
        self.client.query("/1.0/profiles/default", "PUT", project=name, what=self.step,
                          data={"config": {}, "devices": devices,
                                "description": f"anklume: root disk and eth0 on {name}"})

    def update(self, spec, cur):
        name = spec["name"]
        config, desc, devices = self.wanted(spec)
        self.put_config(name, f"/1.0/projects/{qname(name)}", cur, config, desc)
        self.update_default_profile(name, devices)

    def update_default_profile(self, name, devices):
        prof = self.profiles.get((name, "default")) or {}
        dkeys = devices_changes(prof.get("devices"), devices)
        if not dkeys:
            return
        self.change(plan_entry("profile", f"{name}/default", "change", dkeys, project=name),
                    diff_entry(f"profile {name}/default", {"devices": prof.get("devices")},
                               {"devices": devices}))
        if not self.check_mode:
            self.step = f"updating the default profile of project {name}"
            self.client.query("/1.0/profiles/default", "PUT", project=name, what=self.step,
                              data={"config": prof.get("config") or {},
                                    "description": prof.get("description", ""),
                                    "devices": devices})

    def in_use(self, key, cur):
        self.step = f"reading project {key}"
        leftovers = project_leftovers(self.client, key)
        return "it still holds " + ", ".join(leftovers) if leftovers else ""

    def delete(self, key, cur):
        self.client.query(f"/1.0/projects/{qname(key)}", "DELETE", what=self.step)


def main(module=None, client=None):
    """Run as a module, or in the controller through the anklume action plugin (ADR-013);
    CLIENT stands in for the remote's IncusClient in unit tests."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, Projects, "incus_project", client)


if __name__ == "__main__":
    main()
