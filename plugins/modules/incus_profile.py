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
from ansible.module_utils.incus_client import (
    IncusClient,
    IncusError,
    config_changes,
    conflict_message,
    devices_changes,
    diff_entry,
    is_managed,
    markers,
    owner_conflicts,
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


def main(module=None):
    """Run as a module, or in the controller through the anklume action plugin."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    client = IncusClient(p["remote"])
    plan, diffs, warnings, orphans = [], [], [], []
    changed = False
    step = "reading profiles"
    try:
        current = client.profiles()
        if p["report_orphans"] or p["state"] == "pruned":
            declared = set(p["declared"]) | {"{}/{}".format(x["project"], x["name"])
                                             for x in p["profiles"]}
            orphans = sorted("{}/{}".format(*key) for key, prof in current.items()
                             if "{}/{}".format(*key) not in declared and key[1] != "default"
                             and is_managed(prof, p["owner"] or None))
        if p["state"] in ("present", "absent"):
            # ADR-021: another anklume project's profile is never changed nor deleted.
            conflicts = owner_conflicts(
                "profile", [("{}/{}".format(x["project"], x["name"]),
                             current.get((x["project"], x["name"])), x["project"])
                            for x in p["profiles"]], p["owner"])
            if conflicts:
                module.fail_json(msg=conflict_message("incus_profile", conflicts),
                                 plan=conflicts, step="checking owners")
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
                    plan.append(plan_entry("profile", label, "create", project=project))
                    diffs.append(diff_entry(f"profile {label}", None,
                                            {"config": wanted, "devices": devices}))
                    changed = True
                    if not module.check_mode:
                        step = f"creating profile {label}"
                        client.query("/1.0/profiles", "POST", project=project, what=step,
                                     data={"name": name, "description": desc,
                                           "config": wanted, "devices": devices})
                    continue
                if not is_managed(cur, None):
                    warnings.append(f"profile {label} exists without the anklume marker: left alone")
                    plan.append(plan_entry("profile", label, "foreign", project=project))
                    continue
                keys, removed = config_changes(cur.get("config"), wanted, ("",))
                keys = [f"config.{k}" for k in keys + removed]
                keys += devices_changes(cur.get("devices"), devices)
                if cur.get("description", "") != desc:
                    keys.append("description")
                if not keys:
                    continue
                plan.append(plan_entry("profile", label, "change", keys, project=project))
                diffs.append(diff_entry(f"profile {label}",
                                        {"config": cur.get("config"), "devices": cur.get("devices")},
                                        {"config": wanted, "devices": devices}))
                changed = True
                if not module.check_mode:
                    step = f"updating profile {label}"
                    client.query(f"/1.0/profiles/{qname(name)}", "PUT", project=project,
                                 what=step, data={"config": wanted, "devices": devices,
                                                  "description": desc})
        targets = []
        if p["state"] == "absent":
            targets = ["{}/{}".format(x["project"], x["name"]) for x in p["profiles"]]
        elif p["state"] == "pruned":
            targets = orphans
        for label in targets:
            project, name = label.split("/", 1)
            cur = current.get((project, name))
            if cur is None:
                continue
            if not is_managed(cur, None):
                warnings.append(f"profile {label} is not managed by anklume: not deleted")
                continue
            if cur.get("used_by") and not module.check_mode:
                warnings.append("profile {} kept: still used by {}".format(label, ", ".join(cur["used_by"])))
                plan.append(plan_entry("profile", label, "keep", project=project))
                continue
            plan.append(plan_entry("profile", label, "remove", project=project))
            changed = True
            if not module.check_mode:
                step = f"deleting profile {label}"
                client.query(f"/1.0/profiles/{qname(name)}", "DELETE", project=project,
                             what=step)
        if p["state"] == "present":
            plan.extend(plan_entry("profile", n, "orphan") for n in orphans)
    except IncusError as exc:
        module.fail_json(msg=f"incus_profile: {exc}", plan=plan, step=step)
    for w in warnings:
        module.warn(w)
    module.exit_json(changed=changed, plan=plan, orphans=orphans, diff=diffs,
                     incus_calls=client.calls)


if __name__ == "__main__":
    main()
