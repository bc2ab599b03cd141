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
    O(state=pruned), deletes) bridges that carry the anklume marker for this
    O(owner) but are no longer declared.
  - A bridge to create whose IPv4 subnet overlaps an existing bridge's fails the task
    before anything is written, naming both bridges.
  - On a cluster (C(GET /1.0) says C(environment.server_clustered)), a bridge is created the
    way Incus wants it there - on every member first (C(POST /1.0/networks?target=MEMBER)
    with only the member-specific keys), then once with its config - so each member has
    its own local bridge with the same subnet. A bridge left pending on some members by an
    interrupted run is finished. Updates and deletes are cluster-wide.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
  - anklume.incus.reconcile
options:
  networks:
    description: Networks to reconcile (or delete with O(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Bridge name., type: str, required: true}
      description: {description: Free text., type: str, default: ""}
      config: {description: Incus network config keys., type: dict, default: {}}
  declared:
    description: Every network name the whole infra declares; with O(report_orphans) the
      managed ones outside it (and matching O(prefix)) are orphans.
  prefix: {description: Naming scheme of our bridges., type: str, default: "net-"}
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Reconcile the domain bridges
  anklume.incus.incus_network:
    networks:
      - name: net-pro
        config: {ipv4.address: 10.100.2.254/24, ipv4.nat: "true", ipv6.address: none}
    owner: anklume
"""

RETURN = r"""
plan:
  description: >-
    One entry per bridge (C(kind=network)) created, changed, removed, kept, left alone or
    orphaned (entry keys in the notes): C(action) is V(create), V(change), V(remove), V(keep)
    (still in use), V(foreign) (not ours), V(orphan) or V(conflict); C(keys) are config keys.
  type: list
  elements: dict
  returned: always
  sample: [{kind: network, name: net-pro, action: change, keys: [ipv4.nat]}]
orphans: {description: Managed networks no longer declared., type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: always}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

import ipaddress
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

ARGUMENT_SPEC = dict(
    networks=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        config=dict(type="dict", default={}),
    )),
    prefix=dict(type="str", default="net-"),
    **reconcile.RECONCILE_OPTIONS,
)


def subnet_of(config: Mapping[str, Any] | None) -> IPv4Network | IPv6Network | None:
    addr = (config or {}).get("ipv4.address") or ""
    try:
        return ipaddress.ip_interface(addr).network if "/" in addr else None
    except ValueError:
        return None


def subnet_clashes(wanted: Iterable[Mapping[str, Any]],
                   current: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per declared bridge to create whose IPv4 subnet an existing bridge already
    holds (a removed domain's bridge still up, say): Incus would fail half-way with a
    dnsmasq "Address already in use"; we stop before any change and say what to do."""
    taken = {name: subnet_of(net.get("config")) for name, net in current.items()}
    out = []
    for net in wanted:
        mine = subnet_of(net.get("config"))
        if net["name"] in current or mine is None:
            continue
        for other, theirs in sorted(taken.items()):
            if theirs is not None and mine.overlaps(theirs):
                out.append(f"network {net['name']}: its subnet {mine} overlaps {theirs} of the "
                           f"existing bridge {other}: give the domain another subnet_id, or "
                           f"delete {other} first (a removed domain's bridge goes with "
                           "`make apply PRUNE=1` once its instances are gone)")
    return out


# Incus's words when a bridge create or delete meets a veth that vanishes meanwhile
# ("Failed to delete bridge children interfaces: ... Device "vethX" does not exist").
VANISHING_VETH = ("bridge children interfaces", "does not exist")

# A bridge not created yet reads as one still pending: the cluster-wide create is to run.
PENDING = {"status": "Pending"}

# The bridge keys Incus keeps per cluster member: given with each member's create only.
MEMBER_KEYS = ("bridge.external_interfaces",)


def split_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(member-specific keys, cluster-wide keys) of a bridge's config."""
    member = {k: v for k, v in config.items() if k in MEMBER_KEYS}
    return member, {k: v for k, v in config.items() if k not in MEMBER_KEYS}


def is_pending(net: Mapping[str, Any] | None) -> bool:
    """Created on some cluster members only: the cluster-wide create has not run yet."""
    return (net or {}).get("status") == "Pending"


def cluster_members(server: Mapping[str, Any] | None,
                    members: Callable[[], Iterable[Mapping[str, Any]] | None]) -> list[str]:
    """The names of the members to create a bridge on, [] when the server is no cluster.

    ``server`` is C(GET /1.0), ``members`` a callable returning C(/1.0/cluster/members)
    (called only on a cluster)."""
    if not ((server or {}).get("environment") or {}).get("server_clustered"):
        return []
    return sorted(m["server_name"] for m in members() or [])


class Networks(reconcile.ObjectReconciler):
    KIND = "network"
    ITEMS = "networks"
    # The DHCP route of firewall_mode vm: gone from the declaration, gone from the bridge.
    OWNED_KEYS = ("raw.dnsmasq",)
    READING = "reading networks"

    def __init__(self, module: reconcile.Module, name: str, client: Any = None) -> None:
        super().__init__(module, name, client)
        self._members: list[str] | None = None

    def members(self) -> list[str]:
        """Cluster members (read once, at the first create); [] on a single server."""
        if self._members is None:
            self._members = cluster_members(
                self.client.get("/1.0", what="reading the server's environment"),
                lambda: self.client.get("/1.0/cluster/members", params={"recursion": 1},
                                        what="listing cluster members"))
        return self._members

    def present_one(self, spec: reconcile.Spec) -> None:
        cur = self.current.get(spec["name"])
        if is_pending(cur):
            self.create(spec, done=(cur or {}).get("locations") or ())
        else:
            super().present_one(spec)

    def read(self) -> dict[str, reconcile.Obj]:
        return self.client.networks()

    def may_be_orphan(self, key: str, obj: reconcile.Obj) -> bool:
        return key.startswith(self.params["prefix"])

    def before_changes(self, specs: list[reconcile.Spec]) -> None:
        clashes = subnet_clashes(specs, self.current)
        if clashes:
            self.fail("incus_network: nothing was changed:\n" + "\n".join(clashes),
                      step="checking subnets")

    def create(self, spec: reconcile.Spec, done: Collection[str] = ()) -> None:
        """Create bridge ``spec``; on a cluster, first on each member not in ``done``."""
        name = spec["name"]
        config, desc = self.wanted(spec)[:2]
        after = {"config": config, "description": desc}
        self.change(self.entry(name, "create"), incus.diff_entry(f"network {name}", None, after))
        if self.check_mode:
            return
        member_config, config = split_config(config)
        members = self.members()
        # The description too: Incus keeps the one of the first member's create.
        for member in members:
            if member not in done:
                self.step = f"creating network {name} on cluster member {member}"
                self.client.query("/1.0/networks", "POST", what=self.step,
                                  params={"target": member},
                                  data={"name": name, "type": "bridge", "description": desc,
                                        "config": member_config})
        self.step = f"creating network {name}" + (" on the cluster" if members else "")
        data = {"name": name, "type": "bridge", "description": desc, "config": config}
        self.retry_vanishing_veths(
            lambda: self.client.query("/1.0/networks", "POST", what=self.step, data=data),
            done=lambda: not is_pending(self.client.networks().get(name, PENDING)))

    def update(self, spec: reconcile.Spec, cur: reconcile.Obj) -> None:
        config, desc = self.wanted(spec)[:2]
        url = f"/1.0/networks/{incus.qname(spec['name'])}"
        self.put_config(spec["name"], url, cur, config, desc)

    def put(self, path: str, data: dict[str, Any]) -> None:
        """An update meets the same veth race as a create (CI saw it on a NAT change)."""
        def done() -> bool:
            now = (self.client.get(path, what=self.step) or {}).get("config") or {}
            return all(now.get(k) == v for k, v in data["config"].items())
        self.retry_vanishing_veths(lambda: super(Networks, self).put(path, data), done=done)

    def in_use(self, key: str, cur: reconcile.Obj) -> str:
        used = list(cur.get("used_by") or [])
        return "still used by " + ", ".join(used) if used else ""

    def delete(self, key: str, cur: reconcile.Obj) -> None:
        url = f"/1.0/networks/{incus.qname(key)}"
        self.retry_vanishing_veths(
            lambda: self.client.query(url, "DELETE", what=self.step),
            done=lambda: key not in self.client.networks())

    @staticmethod
    def retry_vanishing_veths(call: Callable[[], object], done: Callable[[], bool],
                              tries: int = 5) -> None:
        """Run ``call``, again while Incus trips on a veth that another instance's deletion
        is removing ("Failed to delete bridge children interfaces ... does not exist": a
        bridge created or deleted while any container goes, ADR-073), a few times with a
        growing wait; stop as soon as ``done()`` says the change went through."""
        for attempt in range(1, tries + 1):
            try:
                call()
                return
            except incus.IncusError as exc:
                if not any(words in str(exc) for words in VANISHING_VETH) or attempt == tries:
                    raise
            time.sleep(attempt)
            if done():
                return


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_module(ARGUMENT_SPEC, Networks, "incus_network", module, client)


if __name__ == "__main__":
    main()
