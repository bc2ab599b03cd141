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
  - Projects carrying the anklume marker for I(owner) but no longer declared are
    orphans; I(state=pruned) deletes them when empty.
  - A declared project that carries the anklume marker with another I(owner) fails the
    task before anything is written (ADR-021); one without the marker is left alone.
  - Supports check mode and diff; every result carries a C(plan) list.
options:
  projects:
    description: Projects to reconcile (or delete with I(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Project name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: Project config keys (features.*, limits.*, ...)., type: dict, default: {}}
      default_devices: {description: Devices of the project's default profile., type: dict, default: {}}
  declared: {description: Every project the whole infra declares., type: list, elements: str, default: []}
  report_orphans: {description: Compute orphans., type: bool, default: false}
  owner: {description: anklume project name written in C(user.anklume.owner)., type: str, default: ""}
  remote: {description: Incus remote., type: str, default: local}
  state: {description: present, absent or pruned., type: str, choices: [present, absent, pruned], default: present}
author: AnKLuMe
"""

EXAMPLES = r"""
- name: Reconcile the domain projects
  incus_project:
    projects:
      - name: pro
        config: {features.images: "false", features.profiles: "true"}
        default_devices:
          root: {type: disk, path: /, pool: default}
          eth0: {type: nic, network: net-pro, name: eth0}
"""

RETURN = r"""
plan: {description: One entry per object (kind, name, action, keys)., type: list, returned: always}
orphans: {description: Managed projects no longer declared., type: list, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    Reconciliation,
    config_changes,
    devices_changes,
    diff_entry,
    is_managed,
    markers,
    plan_entry,
    qname,
    stringify,
)


def project_is_empty(client, name):
    """Instances and non-default profiles block a project deletion."""
    leftovers = []
    for url in client.get(f"/1.0/projects/{qname(name)}").get("used_by") or []:
        if "/profiles/default" in url:
            continue
        leftovers.append(url)
    return leftovers


ARGUMENT_SPEC = dict(
    projects=dict(type="list", elements="dict", default=[]),
    declared=dict(type="list", elements="str", default=[]),
    report_orphans=dict(type="bool", default=False),
    owner=dict(type="str", default=""),
    remote=dict(type="str", default="local"),
    state=dict(type="str", default="present", choices=["present", "absent", "pruned"]),
)


def reconcile(r, p, check_mode):
    client = r.client
    current = client.projects()
    if p["report_orphans"] or p["state"] == "pruned":
        declared = set(p["declared"]) | {x["name"] for x in p["projects"]}
        r.orphans = sorted(n for n, proj in current.items()
                           if n not in declared and n != "default"
                           and is_managed(proj, p["owner"] or None))
    if p["state"] in ("present", "absent"):
        # ADR-021: another anklume project's project is never changed nor deleted.
        r.check_owners("project", [(x["name"], current.get(x["name"]), None)
                                   for x in p["projects"]])
    if p["state"] == "present":
        profiles = client.profiles() if current else {}
        for proj in p["projects"]:
            name = proj["name"]
            wanted = stringify(proj.get("config"))
            wanted.update(markers(p["owner"]))
            desc = proj.get("description") or ""
            devices = {k: stringify(v) for k, v in (proj.get("default_devices") or {}).items()}
            cur = current.get(name)
            if cur is None:
                r.change(plan_entry("project", name, "create"),
                         diff_entry(f"project {name}", None,
                                    {"config": wanted, "description": desc,
                                     "default_profile_devices": devices}))
                if not check_mode:
                    r.step = f"creating project {name}"
                    client.query("/1.0/projects", "POST", what=r.step, data={
                        "name": name, "description": desc, "config": wanted})
                    r.step = f"setting the default profile of project {name}"
                    client.query("/1.0/profiles/default", "PUT", project=name, what=r.step,
                                 data={"config": {}, "devices": devices,
                                       "description": "anklume: root disk and eth0 "
                                                      f"on {name}"})
                continue
            if not is_managed(cur, None):
                r.warnings.append(f"project {name} exists without the anklume marker: left alone")
                r.plan.append(plan_entry("project", name, "foreign"))
                continue
            keys, removed = config_changes(cur.get("config"), wanted, ("user.anklume.",))
            if cur.get("description", "") != desc:
                keys.append("description")
            if keys or removed:
                new_config = {k: v for k, v in (cur.get("config") or {}).items()
                              if k not in removed}
                new_config.update(wanted)
                r.change(plan_entry("project", name, "change", keys + removed),
                         diff_entry(f"project {name}",
                                    {"config": cur.get("config"),
                                     "description": cur.get("description", "")},
                                    {"config": new_config, "description": desc}))
                if not check_mode:
                    r.step = f"updating project {name}"
                    client.query(f"/1.0/projects/{qname(name)}", "PUT", what=r.step,
                                 data={"config": new_config, "description": desc})
            prof = profiles.get((name, "default")) or {}
            dkeys = devices_changes(prof.get("devices"), devices)
            if dkeys:
                r.change(plan_entry("profile", f"{name}/default", "change", dkeys,
                                    project=name),
                         diff_entry(f"profile {name}/default",
                                    {"devices": prof.get("devices")},
                                    {"devices": devices}))
                if not check_mode:
                    r.step = f"updating the default profile of project {name}"
                    client.query("/1.0/profiles/default", "PUT", project=name, what=r.step,
                                 data={"config": prof.get("config") or {},
                                       "description": prof.get("description", ""),
                                       "devices": devices})
    targets = []
    if p["state"] == "absent":
        targets = [x["name"] for x in p["projects"]]
    elif p["state"] == "pruned":
        targets = r.orphans
    for name in targets:
        cur = current.get(name)
        if cur is None:
            continue
        if not is_managed(cur, None):
            r.warnings.append(f"project {name} is not managed by anklume: not deleted")
            continue
        r.step = f"reading project {name}"
        leftovers = project_is_empty(client, name)
        if leftovers and not check_mode:
            r.warnings.append("project {} kept: it still holds {}".format(name, ", ".join(leftovers)))
            r.plan.append(plan_entry("project", name, "keep"))
            continue
        r.change(plan_entry("project", name, "remove"),
                 diff_entry(f"project {name}", {"config": cur.get("config")}, None))
        if not check_mode:
            r.step = f"deleting project {name}"
            client.query(f"/1.0/projects/{qname(name)}", "DELETE", what=r.step)
    if p["state"] == "present":
        r.plan.extend(plan_entry("project", n, "orphan") for n in r.orphans)


def main(module=None):
    """Run as a module, or in the controller through the anklume action plugin."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    r = Reconciliation(module, "incus_project", "reading projects")
    r.run(lambda: reconcile(r, module.params, module.check_mode))


if __name__ == "__main__":
    main()
