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
  - Profiles with the anklume marker for O(owner) that are no longer declared are orphans;
    O(state=pruned) deletes them (not while an instance still uses one).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
  - anklume.incus.reconcile
options:
  profiles:
    description: Profiles to reconcile (or delete with O(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      project: {description: Incus project holding the profile., type: str, required: true}
      name: {description: Profile name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: Profile config keys., type: dict, default: {}}
      devices: {description: Profile devices., type: dict, default: {}}
  declared: {description: "Every profile the infra declares, as C(project/name)."}
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Reconcile extra profiles
  anklume.incus.incus_profile:
    profiles:
      - {project: homelab, name: nesting, config: {security.nesting: "true"}}
"""

RETURN = r"""
plan:
  description: >-
    One entry per profile (C(kind=profile), C(name) as C(project/name)) created, changed,
    removed, kept, left alone or orphaned (entry keys in the notes): C(action) is V(create),
    V(change), V(remove), V(keep) (still in use), V(foreign) (not ours), V(orphan) or
    V(conflict); C(keys) are C(config.*), C(devices.*) or C(description).
  type: list
  elements: dict
  returned: always
  sample: [{kind: profile, name: homelab/nesting, project: homelab, action: create}]
orphans: {description: "Managed profiles no longer declared (C(project/name)).", type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: always}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

ARGUMENT_SPEC = dict(
    profiles=dict(type="list", elements="dict", default=[], options=dict(
        project=dict(type="str", required=True),
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        config=dict(type="dict", default={}),
        devices=dict(type="dict", default={}),
    )),
    **reconcile.RECONCILE_OPTIONS,
)


class Profiles(reconcile.ProjectObjectReconciler):
    KIND = "profile"
    ITEMS = "profiles"
    READING = "reading profiles"
    DEVICES = "devices"
    DIFF_ON_REMOVE = False

    def read(self) -> dict[tuple[str, str], reconcile.Obj]:
        return self.client.profiles()

    def may_be_orphan(self, key: tuple[str, str], obj: reconcile.Obj) -> bool:
        return key[1] != "default"

    def create(self, spec: reconcile.Spec) -> None:
        key = self.key(spec)
        config, desc, devices = self.wanted(spec)
        self.change(self.entry(key, "create"),
                    incus.diff_entry(self.label(key), None, {"config": config, "devices": devices}))
        if not self.check_mode:
            self.step = f"creating {self.label(key)}"
            self.client.query("/1.0/profiles", "POST", project=key[0], what=self.step,
                              data={"name": key[1], "description": desc,
                                    "config": config, "devices": devices})

    def update(self, spec: reconcile.Spec, cur: reconcile.Obj) -> None:
        key = self.key(spec)
        config, desc, devices = self.wanted(spec)
        keys, removed = incus.config_changes(cur.get("config"), config, ("",))
        keys = [f"config.{k}" for k in keys + removed]
        keys += incus.devices_changes(cur.get("devices"), devices)
        if cur.get("description", "") != desc:
            keys.append("description")
        if not keys:
            return
        self.change(self.entry(key, "change", keys),
                    incus.diff_entry(self.label(key),
                                     {"config": cur.get("config"), "devices": cur.get("devices")},
                                     {"config": config, "devices": devices}))
        if not self.check_mode:
            self.step = f"updating {self.label(key)}"
            self.client.query(f"/1.0/profiles/{incus.qname(key[1])}", "PUT", project=key[0],
                              what=self.step, data={"config": config, "devices": devices,
                                                    "description": desc})

    def in_use(self, key: tuple[str, str], cur: reconcile.Obj) -> str:
        used = cur.get("used_by") or []
        return "still used by " + ", ".join(used) if used else ""

    def delete(self, key: tuple[str, str], cur: reconcile.Obj) -> None:
        self.client.query(f"/1.0/profiles/{incus.qname(key[1])}", "DELETE", project=key[0],
                          what=self.step)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_module(ARGUMENT_SPEC, Profiles, "incus_profile", module, client)


if __name__ == "__main__":
    main()
