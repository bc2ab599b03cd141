#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Before any change: are the cluster members that hold the declared instances online?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_cluster
short_description: Check that the cluster members holding the declared instances answer, before any change
description:
  - Reads the server's C(/1.0) once. On a single server nothing else is read; a declared
    O(instances[].target) there is a problem (there is no member to pin it to).
  - On a cluster, reads the members (C(/1.0/cluster/members)) and the instances without their
    state (C(/1.0/instances?recursion=1), answered from the cluster database, so a member that
    is down does not hold it up). The members that matter are each declared target and the
    member each existing declared instance is on.
  - Such a member that is not online by the cluster's heartbeat, or that does not answer a
    request sent to it within O(probe_timeout) seconds (a member just stopped stays online
    until the heartbeat misses it, C(cluster.offline_threshold), 20 s by default), is a
    problem - one line naming the member, its status, the machines it holds and the fix. A
    target that is not a member is one too.
  - Other members that are not online only get a warning (a bridge created now misses them).
  - Every result carries a RV(plan) list (ADR-056).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.check
  - anklume.incus.scope
options:
  instances: {description: "The declared instances in scope, with the member each is pinned to."}
  probe_timeout:
    description: Seconds each request of the check may take (the probe of a member included).
    type: int
    default: 10
  fail:
    description: Fail the task when a problem is found (V(false) only reports).
    type: bool
    default: true
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop before any change when a member that holds declared instances is down
  anklume.incus.incus_cluster:
    instances: [{name: pro-dev, project: pro, target: node2}]
    remote: lab
"""

RETURN = r"""
clustered: {description: Whether the server is a cluster member (C(environment.server_clustered))., type: bool, returned: always}
members:
  description: "Member name to its status (C(Online), C(Offline), C(Evacuated), ...); empty on a single server."
  type: dict
  returned: always
placement:
  description: "Declared instance (C(project/name)) to the member it is on, or will be on (V('') when Incus places it)."
  type: dict
  returned: always
problems: {description: One line per member or target that stops the run., type: list, elements: str, returned: always}
plan:
  description: One C(info) entry per problem (ADR-056).
  type: list
  elements: dict
  returned: always
incus_calls: {description: Incus REST calls made., type: int, returned: always}
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

ONLINE = "Online"


def ref(inst: Mapping[str, Any]) -> str:
    return "{}/{}".format(inst.get("project") or "default", inst["name"])


def placement(instances: Iterable[Mapping[str, Any]],
              existing: Mapping[str, str]) -> dict[str, str]:
    """Declared ``project/name`` -> the member it is on (existing) or pinned to ("" for any).
    ``existing`` maps ``project/name`` to C(location)."""
    out: dict[str, str] = {}
    for inst in instances:
        key = ref(inst)
        where = existing.get(key)
        out[key] = where if where and where != "none" else (inst.get("target") or "")
    return out


def needed(instances: Iterable[Mapping[str, Any]],
           existing: Mapping[str, str]) -> dict[str, list[str]]:
    """Member -> the declared instances it holds or is to hold (sorted names)."""
    out: dict[str, list[str]] = {}
    for inst in instances:
        key = ref(inst)
        for member in {existing.get(key) or "", inst.get("target") or ""} - {"", "none"}:
            out.setdefault(member, []).append(inst["name"])
    return {m: sorted(set(names)) for m, names in out.items()}


def not_clustered(instances: Iterable[Mapping[str, Any]], remote: str) -> list[str]:
    return [f"machine {i['name']} declares target: {i['target']}, but Incus on {remote} is not "
            "a cluster: remove target from infra.yml (or point global.incus_remote at a cluster)"
            for i in instances if i.get("target")]


def member_problems(members: Mapping[str, Mapping[str, Any]], holders: Mapping[str, list[str]],
                    remote: str, answers: Callable[[str], str | None]) -> list[str]:
    """One line per member that matters and is missing, not online or silent.

    ``members``: name -> C(/1.0/cluster/members) entry; ``holders``: member -> machines;
    ``answers(member)``: None when the member answers, else why not."""
    out: list[str] = []
    for member, machines in sorted(holders.items()):
        names = ", ".join(machines)
        info = members.get(member)
        if info is None:
            out.append(f"cluster {remote} has no member {member} (members: "
                       f"{', '.join(sorted(members)) or 'none'}), the target of {names}: fix the "
                       "target in infra.yml (`incus cluster list " + remote + ":` lists them)")
            continue
        status = info.get("status") or "unknown"
        why = ""
        if status != ONLINE:
            why = f"is {status.upper()} ({info.get('message') or 'no message'})"
        else:
            silent = answers(member)
            if silent:
                why = f"does not answer ({silent}; still ONLINE by its last heartbeat)"
        if why:
            out.append(f"cluster member {member} of {remote} {why}; it holds or is to hold "
                       f"{names}: start its incusd and run again, or give those machines "
                       f"another target (`incus move NAME --target OTHER` for existing ones)")
    return out


def check(client: incus.IncusClient, instances: Sequence[Mapping[str, Any]], remote: str,
          probe_timeout: int) -> tuple[dict[str, Any], list[str]]:
    """The module's result (without ``changed``) and the warnings."""
    server = client.get("/1.0", what=f"reading the server of {remote}")
    clustered = bool(((server or {}).get("environment") or {}).get("server_clustered"))
    result: dict[str, Any] = {"clustered": clustered, "members": {}, "placement": {}, "problems": [], "plan": []}
    warnings: list[str] = []
    if not clustered:
        result["problems"] = not_clustered(instances, remote)
        result["placement"] = {ref(i): i.get("target") or "" for i in instances}
    else:
        items = client.get("/1.0/cluster/members", params={"recursion": 1},
                           what=f"listing the members of cluster {remote}") or []
        members = {m["server_name"]: m for m in items}
        result["members"] = {n: m.get("status") or "" for n, m in members.items()}
        # recursion=1: no instance state, so the members themselves are not asked.
        current = client.get("/1.0/instances", params={"recursion": 1, "all-projects": "true"},
                             what=f"listing the instances of cluster {remote}") or []
        existing = {ref(i): i.get("location") or "" for i in current}
        result["placement"] = placement(instances, existing)
        holders = needed(instances, existing)

        def answers(member: str) -> str | None:
            try:
                client.get("/1.0", params={"target": member},
                           what=f"asking member {member}")
            except incus.IncusError as exc:
                return str(exc).split(": ", 1)[-1] if "timed out" not in str(exc) else \
                    f"no answer within {probe_timeout}s"
            return None

        result["problems"] = member_problems(members, holders, remote, answers)
        for name, info in sorted(members.items()):
            if name not in holders and (info.get("status") or "") != ONLINE:
                warnings.append(f"cluster member {name} of {remote} is "
                                f"{(info.get('status') or 'unknown').upper()}: it holds none "
                                "of the declared machines, but a bridge created now would miss it")
    for line in result["problems"]:
        entry = incus.plan_entry("cluster", remote, "info")
        entry["reason"] = line
        result["plan"].append(entry)
    return result, warnings


ARGUMENT_SPEC = dict(
    **reconcile.SCOPE_OPTION,
    probe_timeout=dict(type="int", default=10),
    fail=dict(type="bool", default=True),
    **reconcile.REMOTE_OPTION,
)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    module = reconcile.ansible_module(module, ARGUMENT_SPEC)
    p = module.params
    client = client or incus.IncusClient(p["remote"], timeout=p["probe_timeout"])
    try:
        result, warnings = check(client, p["instances"], p["remote"], p["probe_timeout"])
    except incus.IncusError as exc:
        module.fail_json(msg=f"incus_cluster: {exc}", incus_calls=client.calls)
    for line in warnings:
        module.warn(line)
    if result["problems"] and p["fail"]:
        module.fail_json(msg="\n".join(result["problems"]), incus_calls=client.calls, **result)
    module.exit_json(changed=False, incus_calls=client.calls, **result)


if __name__ == "__main__":
    main()
