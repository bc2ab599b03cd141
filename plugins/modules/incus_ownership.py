#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Refuse, before anything changes, declared names held by objects that are not ours."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_ownership
short_description: Stop the run when a declared Incus object belongs to someone else
description:
  - Reads the networks, projects, profiles and instances (one query per kind named) and
    compares each declared name with what exists. An object that carries the
    C(user.anklume.managed) marker with another C(user.anklume.owner) (another anklume
    project) is a conflict; so is, with O(unmarked=fail), an object without the marker.
  - Fails with one line per conflict (object, owner, how to fix it) and returns them as
    RV(plan) entries with action V(conflict); never writes anything (ADR-021).
  - Runs first in the infra and destroy plays, so C(make plan), C(make apply) and
    C(make destroy) stop before changing anything.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.check
options:
  networks: {description: Declared bridge names., type: list, elements: str, default: []}
  projects: {description: Declared project names., type: list, elements: str, default: []}
  profiles: {description: "Declared extra profiles, as C(project/name).", type: list, elements: str, default: []}
  instances: {description: "Declared instances, as C(project/name).", type: list, elements: str, default: []}
  owner: {description: anklume project name written in C(user.anklume.owner)., type: str, default: ""}
  unmarked:
    description: What an existing object without the anklume marker is. V(fail) stops the run
      (apply and plan); V(ignore) leaves the verdict to the object modules, which leave it
      alone and say so (destroy).
    type: str
    choices: [fail, ignore]
    default: fail
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Refuse objects of another owner
  anklume.incus.incus_ownership:
    networks: [net-pro]
    projects: [pro]
    profiles: [pro/nvidia-compute]
    instances: [pro/pro-dev]
    owner: anklume
"""

RETURN = r"""
plan:
  description: One V(conflict) entry per object that is not ours.
  type: list
  elements: dict
  returned: always
  contains:
    kind: {description: "V(network), V(project), V(profile) or V(instance).", type: str, returned: always}
    name: {description: The object., type: str, returned: always}
    project: {description: The project of a profile or an instance., type: str, returned: when the object lives in a project}
    action: {description: V(conflict)., type: str, returned: always}
    reason: {description: "One line: object, owner, how to fix it.", type: str, returned: always}
conflicts: {description: One line per conflict (the entries' reasons)., type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: success}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

from collections.abc import Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

ARGUMENT_SPEC = dict(
    networks=dict(type="list", elements="str", default=[]),
    projects=dict(type="list", elements="str", default=[]),
    profiles=dict(type="list", elements="str", default=[]),
    instances=dict(type="list", elements="str", default=[]),
    owner=dict(type="str", default=""),
    unmarked=dict(type="str", default="fail", choices=["fail", "ignore"]),
    **reconcile.REMOTE_OPTION,
)


def split(label: str) -> tuple[str, str]:
    """``project/name`` to (project, name)."""
    project, sep, name = label.partition("/")
    return project, name if sep else ""


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    module = reconcile.ansible_module(module, ARGUMENT_SPEC)
    p = module.params
    client = client or incus.IncusClient(p["remote"])
    plan: list[dict[str, Any]] = []
    step = "reading the objects"

    def check(kind: str, name: str, obj: Mapping[str, Any] | None,
              project: str | None = None) -> None:
        if obj is None:
            return
        problem = incus.ownership_problem(kind, name, obj, p["owner"], project)
        if problem is None or (problem[0] == "foreign" and p["unmarked"] == "ignore"):
            return
        entry = incus.plan_entry(kind, name, "conflict", project=project)
        entry["reason"] = problem[1]
        plan.append(entry)

    try:
        if p["networks"]:
            step = "listing networks"
            current = client.networks()
            for name in p["networks"]:
                check("network", name, current.get(name))
        if p["projects"]:
            step = "listing projects"
            current = client.projects()
            for name in p["projects"]:
                check("project", name, current.get(name))
        if p["profiles"]:
            step = "listing profiles"
            profiles = client.profiles()
            for label in p["profiles"]:
                check("profile", label, profiles.get(split(label)), split(label)[0])
        if p["instances"]:
            step = "listing instances"
            # Without their state: the very list the instances role reads next (ADR-097),
            # shared between the two in one run (ADR-077).
            instances = client.instances(state=False)
            for label in p["instances"]:
                project, name = split(label)
                check("instance", name, instances.get((project, name)), project)
    except incus.IncusError as exc:
        module.fail_json(msg=f"incus_ownership: {exc}", plan=plan, step=step)
    conflicts = [e["reason"] for e in plan]
    if conflicts:
        module.fail_json(
            msg="incus_ownership: {} declared object(s) are not ours; nothing was changed:\n{}"
                .format(len(conflicts), "\n".join(conflicts)),
            plan=plan, conflicts=conflicts, step="checking owners")
    module.exit_json(changed=False, plan=plan, conflicts=conflicts, incus_calls=client.calls)


if __name__ == "__main__":
    main()
