#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Reconcile the extra Incus profiles declared per domain, in bulk."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_profile
short_description: Reconcile a set of Incus profiles (GPU, nesting, ...) with their declaration
description:
  - Reads every profile of every project with one query, creates the missing ones and
    makes the existing ones hold exactly the declared config and devices.
  - Profiles with the anklume marker for I(owner) that are no longer declared are orphans;
    I(state=pruned) deletes them (Incus refuses while an instance still uses one).
  - A declared profile that carries the anklume marker with another I(owner) fails the
    task before anything is written (ADR-021); one without the marker is left alone.
  - Supports check mode and diff; every result carries a C(plan) list.
options:
  profiles:
    description: Profiles to reconcile (or delete with I(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      project: {description: Incus project holding the profile., type: str, required: true}
      name: {description: Profile name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: Profile config keys., type: dict, default: {}}
      devices: {description: Profile devices., type: dict, default: {}}
  declared: {description: "Every profile the infra declares, as C(project/name).", type: list, elements: str, default: []}
  report_orphans: {description: Compute orphans., type: bool, default: false}
  owner: {description: anklume project name written in C(user.anklume.owner)., type: str, default: ""}
  remote: {description: Incus remote., type: str, default: local}
  state: {description: present, absent or pruned., type: str, choices: [present, absent, pruned], default: present}
author: AnKLuMe
"""

EXAMPLES = r"""
- name: Reconcile extra profiles
  incus_profile:
    profiles:
      - {project: homelab, name: nesting, config: {security.nesting: "true"}}
"""

RETURN = r"""
plan: {description: One entry per object (kind, name, action, keys)., type: list, returned: always}
orphans: {description: "Managed profiles no longer declared (project/name).", type: list, returned: always}
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

ARGUMENT_SPEC = dict(
    profiles=dict(type="list", elements="dict", default=[]),
    declared=dict(type="list", elements="str", default=[]),
    report_orphans=dict(type="bool", default=False),
    owner=dict(type="str", default=""),
    remote=dict(type="str", default="local"),
    state=dict(type="str", default="present", choices=["present", "absent", "pruned"]),
)


def reconcile(r, p, check_mode):
    client = r.client
    current = client.profiles()
    if p["report_orphans"] or p["state"] == "pruned":
        declared = set(p["declared"]) | {"{}/{}".format(x["project"], x["name"])
                                         for x in p["profiles"]}
        r.orphans = sorted("{}/{}".format(*key) for key, prof in current.items()
                           if "{}/{}".format(*key) not in declared and key[1] != "default"
                           and is_managed(prof, p["owner"] or None))
    if p["state"] in ("present", "absent"):
        # ADR-021: another anklume project's profile is never changed nor deleted.
        r.check_owners("profile", [("{}/{}".format(x["project"], x["name"]),
                                    current.get((x["project"], x["name"])), x["project"])
                                   for x in p["profiles"]])
    if p["state"] == "present":
        for prof in p["profiles"]:
            project, name = prof["project"], prof["name"]
            label = f"{project}/{name}"
            wanted = stringify(prof.get("config"))
            wanted.update(markers(p["owner"]))
            devices = {k: stringify(v) for k, v in (prof.get("devices") or {}).items()}
            desc = prof.get("description") or ""
            cur = current.get((project, name))
            if cur is None:
                r.change(plan_entry("profile", label, "create", project=project),
                         diff_entry(f"profile {label}", None,
                                    {"config": wanted, "devices": devices}))
                if not check_mode:
                    r.step = f"creating profile {label}"
                    client.query("/1.0/profiles", "POST", project=project, what=r.step,
                                 data={"name": name, "description": desc,
                                       "config": wanted, "devices": devices})
                continue
            if not is_managed(cur, None):
                r.warnings.append(f"profile {label} exists without the anklume marker: left alone")
                r.plan.append(plan_entry("profile", label, "foreign", project=project))
                continue
            keys, removed = config_changes(cur.get("config"), wanted, ("",))
            keys = [f"config.{k}" for k in keys + removed]
            keys += devices_changes(cur.get("devices"), devices)
            if cur.get("description", "") != desc:
                keys.append("description")
            if not keys:
                continue
            r.change(plan_entry("profile", label, "change", keys, project=project),
                     diff_entry(f"profile {label}",
                                {"config": cur.get("config"), "devices": cur.get("devices")},
                                {"config": wanted, "devices": devices}))
            if not check_mode:
                r.step = f"updating profile {label}"
                client.query(f"/1.0/profiles/{qname(name)}", "PUT", project=project,
                             what=r.step, data={"config": wanted, "devices": devices,
                                                "description": desc})
    targets = []
    if p["state"] == "absent":
        targets = ["{}/{}".format(x["project"], x["name"]) for x in p["profiles"]]
    elif p["state"] == "pruned":
        targets = r.orphans
    for label in targets:
        project, name = label.split("/", 1)
        cur = current.get((project, name))
        if cur is None:
            continue
        if not is_managed(cur, None):
            r.warnings.append(f"profile {label} is not managed by anklume: not deleted")
            continue
        if cur.get("used_by") and not check_mode:
            r.warnings.append("profile {} kept: still used by {}".format(label, ", ".join(cur["used_by"])))
            r.plan.append(plan_entry("profile", label, "keep", project=project))
            continue
        r.change(plan_entry("profile", label, "remove", project=project))
        if not check_mode:
            r.step = f"deleting profile {label}"
            client.query(f"/1.0/profiles/{qname(name)}", "DELETE", project=project,
                         what=r.step)
    if p["state"] == "present":
        r.plan.extend(plan_entry("profile", n, "orphan") for n in r.orphans)


def main(module=None):
    """Run as a module, or in the controller through the anklume action plugin."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    r = Reconciliation(module, "incus_profile", "reading profiles")
    r.run(lambda: reconcile(r, module.params, module.check_mode))


if __name__ == "__main__":
    main()
