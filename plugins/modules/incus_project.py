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
  description: >-
    One entry per project (C(kind=project)), and per project default profile
    (C(kind=profile), C(name) as C(PROJECT/default), with its C(project)), created, changed,
    removed, kept, left alone or orphaned (entry keys in the notes): C(action) is V(create),
    V(change), V(remove), V(keep) (not empty), V(foreign) (not ours), V(orphan) or V(conflict).
  type: list
  elements: dict
  returned: always
  sample: [{kind: project, name: pro, action: create}]
orphans: {description: Managed projects no longer declared., type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: always}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import project_limits, reconcile

ARGUMENT_SPEC = dict(
    projects=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        config=dict(type="dict", default={}),
        default_devices=dict(type="dict", default={}),
    )),
    **reconcile.RECONCILE_OPTIONS,
)


def project_leftovers(client: incus.IncusClient, name: str) -> list[str]:
    """What blocks a project's deletion: its instances and profiles but the default one."""
    return [url for url in client.get(f"/1.0/projects/{incus.qname(name)}").get("used_by") or []
            if "/profiles/default" not in url]


class Projects(reconcile.ObjectReconciler):
    KIND = "project"
    ITEMS = "projects"
    READING = "reading projects"
    DEVICES = "default_devices"
    # A domain's budget (ADR-086): a limit it no longer sets is removed from its project.
    OWNED_KEYS = project_limits.PROJECT_KEYS

    def fail(self, msg: str, **extra: Any) -> None:
        # Incus refusing a budget (instances without their share, or over it): one line.
        head, sep, body = msg.partition(f"{self.name}: ")
        line = project_limits.explain(body) if sep and not head else None
        super().fail(f"{self.name}: {line}" if line else msg, **extra)

    def read(self) -> dict[str, reconcile.Obj]:
        current = self.client.projects()
        # The default profiles, read only when a project exists at all.
        self.profiles: dict[tuple[str, str], reconcile.Obj] = self.client.profiles() \
            if current and self.params["state"] == "present" else {}
        return current

    def may_be_orphan(self, key: str, obj: reconcile.Obj) -> bool:
        return key != "default"

    def create(self, spec: reconcile.Spec) -> None:
        name = spec["name"]
        config, desc, devices = self.wanted(spec)
        after = {"config": config, "description": desc, "default_profile_devices": devices}
        self.change(self.entry(name, "create"), incus.diff_entry(f"project {name}", None, after))
        if self.check_mode:
            return
        self.step = f"creating project {name}"
        self.client.query("/1.0/projects", "POST", what=self.step,
                          data={"name": name, "description": desc, "config": config})
        self.step = f"setting the default profile of project {name}"
        self.client.query("/1.0/profiles/default", "PUT", project=name, what=self.step,
                          data={"config": {}, "devices": devices,
                                "description": f"anklume: root disk and eth0 on {name}"})

    def update(self, spec: reconcile.Spec, cur: reconcile.Obj) -> None:
        name = spec["name"]
        config, desc, devices = self.wanted(spec)
        self.put_config(name, f"/1.0/projects/{incus.qname(name)}", cur, config, desc)
        self.update_default_profile(name, devices)

    def update_default_profile(self, name: str, devices: dict[str, dict[str, str]]) -> None:
        prof = self.profiles.get((name, "default")) or {}
        dkeys = incus.devices_changes(prof.get("devices"), devices)
        if not dkeys:
            return
        self.change(incus.plan_entry("profile", f"{name}/default", "change", dkeys, project=name),
                    incus.diff_entry(f"profile {name}/default", {"devices": prof.get("devices")},
                                     {"devices": devices}))
        if not self.check_mode:
            self.step = f"updating the default profile of project {name}"
            self.client.query("/1.0/profiles/default", "PUT", project=name, what=self.step,
                              data={"config": prof.get("config") or {},
                                    "description": prof.get("description", ""),
                                    "devices": devices})

    def in_use(self, key: str, cur: reconcile.Obj) -> str:
        self.step = f"reading project {key}"
        leftovers = project_leftovers(self.client, key)
        return "it still holds " + ", ".join(leftovers) if leftovers else ""

    def delete(self, key: str, cur: reconcile.Obj) -> None:
        self.client.query(f"/1.0/projects/{incus.qname(key)}", "DELETE", what=self.step)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_module(ARGUMENT_SPEC, Projects, "incus_project", module, client)


if __name__ == "__main__":
    main()
