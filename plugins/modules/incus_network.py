#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Reconcile Incus bridges in bulk (one read, one write per changed bridge)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_network
short_description: Reconcile a set of Incus networks (bridges) with their declaration
description:
  - Reads every network with one C(recursion=1) query, creates the missing
    bridges, updates the declared keys that differ, and reports (or, with
    I(state=pruned), deletes) bridges that carry the anklume marker for this
    I(owner) but are no longer declared.
  - Supports check mode and diff; every result carries a C(plan) list.
  - Objects without the C(user.anklume.managed) marker are never modified or deleted.
  - A declared bridge that carries the marker with another I(owner) (another anklume
    project) fails the task before anything is written (ADR-021).
options:
  networks:
    description: Networks to reconcile (or delete with I(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Bridge name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: Incus network config keys., type: dict, default: {}}
  declared:
    description: Every network name the whole infra declares; with I(report_orphans) the
      managed ones outside it (and matching I(prefix)) are orphans.
    type: list
    elements: str
    default: []
  report_orphans: {description: Compute orphans., type: bool, default: false}
  prefix: {description: Naming scheme of our bridges., type: str, default: "net-"}
  owner: {description: anklume project name written in C(user.anklume.owner)., type: str, default: ""}
  remote: {description: Incus remote., type: str, default: local}
  state:
    description: C(present) reconciles, C(absent) deletes I(networks), C(pruned) deletes orphans.
    type: str
    choices: [present, absent, pruned]
    default: present
author: AnKLuMe
"""

EXAMPLES = r"""
- name: Reconcile the domain bridges
  incus_network:
    networks:
      - name: net-pro
        config: {ipv4.address: 10.100.2.254/24, ipv4.nat: "true", ipv6.address: none}
    owner: anklume
"""

RETURN = r"""
plan:
  description: One entry per object (kind, name, action, keys); action is create, change, remove, orphan or keep.
  type: list
  returned: always
orphans:
  description: Managed networks no longer declared.
  type: list
  returned: always
"""

import ipaddress
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusError,
    Reconciliation,
    config_changes,
    diff_entry,
    is_managed,
    markers,
    plan_entry,
    qname,
    stringify,
)

KIND = "network"


ARGUMENT_SPEC = dict(
    networks=dict(type="list", elements="dict", default=[]),
    declared=dict(type="list", elements="str", default=[]),
    report_orphans=dict(type="bool", default=False),
    prefix=dict(type="str", default="net-"),
    owner=dict(type="str", default=""),
    remote=dict(type="str", default="local"),
    state=dict(type="str", default="present", choices=["present", "absent", "pruned"]),
)


def delete(client, name, what, tries=5):
    """Delete a bridge. Right after its instances went, Incus can trip on one of their
    veths that is still vanishing ("Failed to delete bridge children interfaces"): wait
    and try again, a few times; a bridge already gone is deleted."""
    for attempt in range(1, tries + 1):
        try:
            client.query(f"/1.0/networks/{qname(name)}", "DELETE", what=what)
            return
        except IncusError as exc:
            if "children interfaces" not in str(exc) or attempt == tries:
                raise
        time.sleep(attempt)
        if name not in client.networks():
            return


def subnet_clashes(wanted, current):
    """One line per declared bridge to create whose IPv4 subnet an existing bridge already
    holds (a removed domain's bridge still up, say): Incus would fail half-way with a
    dnsmasq "Address already in use"; we stop before any change and say what to do."""
    def subnet(config):
        addr = (config or {}).get("ipv4.address") or ""
        try:
            return ipaddress.ip_interface(addr).network if "/" in addr else None
        except ValueError:
            return None
    taken = {name: subnet(net.get("config")) for name, net in current.items()}
    out = []
    for net in wanted:
        mine = subnet(net.get("config"))
        if net["name"] in current or mine is None:
            continue
        for other, theirs in sorted(taken.items()):
            if theirs is not None and mine.overlaps(theirs):
                out.append(f"network {net['name']}: its subnet {mine} overlaps {theirs} of the "
                           f"existing bridge {other}: give the domain another subnet_id, or "
                           f"delete {other} first (a removed domain's bridge goes with "
                           "`make apply PRUNE=1` once its instances are gone)")
    return out


def reconcile(r, p, check_mode):
    client = r.client
    current = client.networks()
    if p["report_orphans"] or p["state"] == "pruned":
        declared = set(p["declared"]) | {n["name"] for n in p["networks"]}
        r.orphans = sorted(name for name, net in current.items()
                           if name.startswith(p["prefix"]) and name not in declared
                           and is_managed(net, p["owner"] or None))
    if p["state"] in ("present", "absent"):
        # ADR-021: another anklume project's bridge is never changed nor deleted.
        r.check_owners(KIND, [(n["name"], current.get(n["name"]), None) for n in p["networks"]])
    if p["state"] == "present":
        clashes = subnet_clashes(p["networks"], current)
        if clashes:
            r.module.fail_json(msg="incus_network: nothing was changed:\n" + "\n".join(clashes),
                               step="checking subnets")
        for net in p["networks"]:
            name = net["name"]
            wanted = stringify(net.get("config"))
            wanted.update(markers(p["owner"]))
            desc = net.get("description") or ""
            cur = current.get(name)
            if cur is None:
                r.change(plan_entry(KIND, name, "create"),
                         diff_entry(f"network {name}", None,
                                    {"config": wanted, "description": desc}))
                if not check_mode:
                    r.step = f"creating network {name}"
                    data = {"name": name, "type": "bridge", "description": desc,
                            "config": wanted}
                    try:
                        client.query("/1.0/networks", "POST", what=r.step, data=data)
                    except IncusError:
                        # A bridge re-created right after its previous self was deleted
                        # can trip on veths that are still vanishing: one retry.
                        time.sleep(1)
                        if name in client.networks():
                            raise
                        client.query("/1.0/networks", "POST", what=r.step, data=data)
                continue
            if not is_managed(cur, None):
                r.warnings.append(f"network {name} exists without the anklume marker: left alone")
                r.plan.append(plan_entry(KIND, name, "foreign"))
                continue
            keys, removed = config_changes(cur.get("config"), wanted, ("user.anklume.",))
            if cur.get("description", "") != desc:
                keys.append("description")
            if not keys and not removed:
                continue
            new_config = {k: v for k, v in (cur.get("config") or {}).items()
                          if k not in removed}
            new_config.update(wanted)
            r.change(plan_entry(KIND, name, "change", keys + removed),
                     diff_entry(f"network {name}",
                                {"config": cur.get("config"),
                                 "description": cur.get("description", "")},
                                {"config": new_config, "description": desc}))
            if not check_mode:
                r.step = f"updating network {name}"
                client.query(f"/1.0/networks/{qname(name)}", "PUT", what=r.step,
                             data={"config": new_config, "description": desc})
    targets = []
    if p["state"] == "absent":
        targets = [n["name"] for n in p["networks"]]
    elif p["state"] == "pruned":
        targets = r.orphans
    for name in targets:
        cur = current.get(name)
        if cur is None:
            continue
        if not is_managed(cur, None):
            r.warnings.append(f"network {name} is not managed by anklume: not deleted")
            continue
        used = [u for u in cur.get("used_by") or []]
        if used and not check_mode:
            r.warnings.append("network {} kept: still used by {}".format(name, ", ".join(used)))
            r.plan.append(plan_entry(KIND, name, "keep"))
            continue
        r.change(plan_entry(KIND, name, "remove"),
                 diff_entry(f"network {name}", {"config": cur.get("config")}, None))
        if not check_mode:
            r.step = f"deleting network {name}"
            delete(client, name, r.step)
    if p["state"] == "present":
        r.plan.extend(plan_entry(KIND, name, "orphan") for name in r.orphans)


def main(module=None):
    """Run as a module, or in the controller through the anklume action plugin."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    r = Reconciliation(module, "incus_network", "reading networks")
    r.run(lambda: reconcile(r, module.params, module.check_mode))


if __name__ == "__main__":
    main()
