#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Create, restore, delete and list Incus snapshots, one call for every targeted instance."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incus_snapshot
short_description: Create, restore, delete or list snapshots of many Incus instances at once
description:
  - Reads every instance of every project, with its snapshots, in one
    C(GET /1.0/instances?all-projects=true&recursion=2) query, then acts on all the
    targeted instances in parallel (one Incus operation each, at most O(parallel) at a
    time, each awaited as soon as it starts), so one Ansible task covers the whole scope,
    not one per instance.
  - O(state=present) creates the snapshot where it is missing (a no-op where it exists;
    O(force=true) replaces it). O(state=restored) and O(state=absent) fail, before
    touching anything, when an instance lacks the snapshot, naming the instance and the
    snapshot. O(state=listed) changes nothing and returns the snapshots.
  - Protection (C(security.protection.delete)) guards the instance, not its history, so
    restoring a protected instance and deleting its snapshots are allowed.
  - With C(--diff), the snapshot names of each instance, before and after.
  - Every result carries a RV(plan) list, one entry per snapshot created, replaced,
    removed or restored (ADR-056).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
options:
  instances:
    description:
      - The instances to act on.
      - With O(state=listed), instances that do not exist are left out instead of failing.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Instance name., type: str, required: true}
      project: {description: Its Incus project., type: str, default: default}
  name:
    description: Snapshot name; required unless O(state=listed).
    type: str
  state:
    description: What to do with the snapshot.
    type: str
    choices: [present, absent, restored, listed]
    default: present
  force:
    description: With O(state=present), replace a snapshot that already exists.
    type: bool
    default: false
  stateful:
    description: Take a stateful snapshot (running state too; needs CRIU).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each Incus operation.
    type: int
    default: 600
  parallel:
    description:
      - Incus operations run at a time; each is awaited as soon as it starts, so none is
        lost (ADR-022).
    type: int
    default: 8
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Snapshot two instances in one call
  anklume.incus.incus_snapshot:
    instances:
      - {name: pro-dev, project: pro}
      - {name: perso-desk, project: perso}
    name: before-upgrade

- name: Roll them back
  anklume.incus.incus_snapshot:
    instances: [{name: pro-dev, project: pro}]
    name: before-upgrade
    state: restored
"""

RETURN = r"""
plan:
  description: One entry per snapshot created, replaced, removed or restored (none for a no-op).
  returned: always
  type: list
  elements: dict
  contains:
    kind: {description: V(snapshot)., type: str, returned: always}
    name: {description: "The snapshot, as C(INSTANCE/SNAPSHOT).", type: str, returned: always}
    project: {description: The instance's project., type: str, returned: always}
    action: {description: "V(create), V(replace), V(remove) or V(restore).", type: str, returned: always}
  sample:
    - {kind: snapshot, name: pro-dev/s1, project: pro, action: create}
snapshots:
  description: The snapshots of the targeted instances after the call, oldest first.
  returned: always
  type: list
  elements: dict
  sample:
    - {instance: pro-dev, project: pro, name: s1, created_at: "2026-01-01T10:00:00Z"}
incus_calls:
  description: Incus REST calls made.
  returned: always
  type: int
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

from collections.abc import Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

# The plan action each state takes where the instance has (or lacks) the snapshot.
ACTIONS = {"absent": "remove", "restored": "restore"}
# Operations run in this order; each wave's operations are awaited together (ADR-022).
# (operation, progress label, step, plan actions it serves)
WAVES = (("delete", "deleted", "deleting snapshots", ("remove", "replace")),
         ("create", "created", "creating snapshots", ("create", "replace")),
         ("restore", "restored", "restoring instances", ("restore",)))


def _inventory(client: incus.IncusClient, what: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every instance with its snapshots, in one call: (project, name) -> instance."""
    listing = client.get("/1.0/instances", params={"recursion": 2, "all-projects": "true"},
                         what=what)
    return {((i.get("project") or "default"), i["name"]): i for i in listing or []}


def _date(value: str | None) -> str:
    """Incus writes the zero time for "never"; return "" for it."""
    return "" if not value or value.startswith("0001-01-01") else value


def _snapshot_rows(inst: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for snap in inst.get("snapshots") or []:
        rows.append(
            {
                "instance": inst["name"],
                "project": inst.get("project") or "default",
                "name": snap["name"].rsplit("/", 1)[-1],
                "created_at": _date(snap.get("created_at")),
                "expires_at": _date(snap.get("expires_at")),
                "stateful": bool(snap.get("stateful")),
            }
        )
    rows.sort(key=lambda r: (r["created_at"], r["name"]))
    return rows


def _targets(run: reconcile.Reconciliation,
             inventory: Mapping[tuple[str, str], Any]) -> list[tuple[str, str]]:
    """Resolve the requested instances to (project, name), failing on unknown ones."""
    out, missing = [], []
    for item in run.params["instances"]:
        key = (item["project"] or "default", item["name"])
        if key not in inventory:
            missing.append(f"{key[1]} (project {key[0]})")
        elif key not in out:
            out.append(key)
    if missing and run.params["state"] != "listed":
        run.fail("incus_snapshot: instance not found in Incus: " + ", ".join(missing)
                 + " (create it first: make apply)")
    return out


def _operation(client: incus.IncusClient, entry: Mapping[str, Any], snap: str, action: str,
               stateful: bool) -> incus.Operation:
    """The Incus operation for one instance, with how to check its result (ADR-022)."""
    inst, project = entry["name"].split("/", 1)[0], entry["project"]
    base = f"/1.0/instances/{incus.qname(inst)}"
    path = f"{base}/snapshots/{incus.qname(snap)}"
    where = f"of instance '{inst}' (project {project})"

    def exists() -> bool:
        return client.find(path, project=project, what=f"reading snapshot '{snap}' {where}") \
            is not None

    if action == "delete":
        return incus.Operation(f"deleting snapshot '{snap}' {where}", path, "DELETE",
                               project=project, verify=lambda: not exists())
    if action == "create":
        return incus.Operation(f"creating snapshot '{snap}' {where}", f"{base}/snapshots", "POST",
                               {"name": snap, "stateful": stateful}, project=project, verify=exists)
    # A restore leaves nothing to read back: a dropped one is reported as unknown.
    what = f"restoring instance '{inst}' (project {project}) from snapshot '{snap}'"
    return incus.Operation(what, base, "PUT", {"restore": snap}, project=project)


def _decide(run: reconcile.Reconciliation, inventory: Mapping[tuple[str, str], Mapping[str, Any]],
            targets: list[tuple[str, str]]) -> None:
    """One plan entry per instance to act on; a missing snapshot fails the whole call
    before any change."""
    p = run.params
    state, snap = p["state"], p["name"]
    missing = []
    for project, name in targets:
        has = snap in [r["name"] for r in _snapshot_rows(inventory[(project, name)])]
        if state == "present":
            action = ("replace" if p["force"] else None) if has else "create"
        elif not has:
            missing.append(f"instance '{name}' (project {project}) has no snapshot '{snap}'")
            action = None
        else:
            action = ACTIONS[state]
        if action:
            run.change(incus.plan_entry("snapshot", f"{name}/{snap}", action, project=project))
    if missing:
        run.fail(f"incus_snapshot: cannot {'restore' if state == 'restored' else 'delete'} "
                 f"snapshot '{snap}': " + "; ".join(missing) + " (see: make snapshot-list)",
                 step="checking the snapshots")


def _diff(run: reconcile.Reconciliation, inventory: Mapping[tuple[str, str], Mapping[str, Any]],
          targets: list[tuple[str, str]]) -> dict[str, str]:
    """The snapshot names of each targeted instance, before and after."""
    snap, state = run.params["name"], run.params["state"]
    actions = {(e["project"], e["name"].split("/", 1)[0]): e["action"] for e in run.plan}
    before, after = {}, {}
    for project, name in targets:
        key = f"{project}/{name}"
        names = [r["name"] for r in _snapshot_rows(inventory[(project, name)])]
        action = actions.get((project, name))
        now = list(names)
        if action == "create":
            now.append(snap)
        elif action == "remove":
            now.remove(snap)
        elif action == "replace":
            now = [n for n in now if n != snap] + [snap]
        elif action == "restore":
            now.append(f"(restored from {snap})")
        before[key], after[key] = names, now
    header = f"snapshots ({state} {snap})"
    return {"before_header": header, "after_header": header,
            "before": _yaml(before), "after": _yaml(after)}


def _keep_descriptions(run: reconcile.Reconciliation,
                       before: Mapping[tuple[str, str], Mapping[str, Any]],
                       after: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    """A restore copies the snapshot's (empty) description over the instance's: put back
    the one infra.yml declared, so that the next apply has nothing to change."""
    run.step = "keeping the descriptions of the restored instances"
    for entry in run.plan:
        key = (entry["project"], entry["name"].split("/", 1)[0])
        if entry["action"] != "restore" or key not in after:
            continue
        wanted = before[key].get("description") or ""
        if (after[key].get("description") or "") != wanted:
            run.client.query(f"/1.0/instances/{incus.qname(key[1])}", "PATCH",
                             {"description": wanted}, project=key[0],
                             what=f"{run.step}: {key[1]} (project {key[0]})")
            after[key]["description"] = wanted


def _apply(run: reconcile.Reconciliation) -> None:
    """Run each wave's operations together, at most ``parallel`` at a time (ADR-022)."""
    p = run.params
    for action, label, step, wanted in WAVES:
        run.step = step
        run.client.run_operations(
            [_operation(run.client, e, p["name"], action, p["stateful"])
             for e in run.plan if e["action"] in wanted],
            p["parallel"], progress=getattr(run.module, "progress", None),
            label=f"incus_snapshot: {label}", timeout=p["timeout"])


ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str", "required": True},
        "project": {"type": "str", "default": "default"},
    }},
    "name": {"type": "str"},
    "state": {
        "type": "str",
        "default": "present",
        "choices": ["present", "absent", "restored", "listed"],
    },
    "force": {"type": "bool", "default": False},
    "stateful": {"type": "bool", "default": False},
    **reconcile.REMOTE_OPTION,
    "timeout": {"type": "int", "default": 600},
    "parallel": {"type": "int", "default": incus.DEFAULT_PARALLEL},
}


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    module = reconcile.ansible_module(module, ARGUMENT_SPEC)
    p = module.params
    client = client or incus.IncusClient(remote=p["remote"], timeout=p["timeout"] + 30)
    run = reconcile.Reconciliation(module, "incus_snapshot",
                                   "listing instances and their snapshots", client)
    if p["state"] != "listed" and not p["name"]:
        run.fail(f"incus_snapshot: state={p['state']} needs a name")

    try:
        inventory = _inventory(client, run.step)
    except incus.IncusError as exc:
        run.fail(str(exc))
    targets = _targets(run, inventory)

    if p["state"] == "listed":
        rows = [row for key in targets for row in _snapshot_rows(inventory[key])]
        module.exit_json(changed=False, plan=[], snapshots=rows, incus_calls=client.calls)

    _decide(run, inventory, targets)
    diff = _diff(run, inventory, targets)
    if run.plan and not module.check_mode:
        try:
            _apply(run)
        except incus.IncusError as exc:
            run.fail(f"incus_snapshot: {exc}")
        # Re-read the snapshots, for a truthful returned list.
        run.step = "listing snapshots after the change"
        try:
            before, inventory = inventory, _inventory(client, run.step)
            _keep_descriptions(run, before, inventory)
        except incus.IncusError as exc:
            run.fail(str(exc))

    rows = [row for key in targets if key in inventory for row in _snapshot_rows(inventory[key])]
    out = {"changed": run.changed, "plan": run.plan, "snapshots": rows,
           "incus_calls": client.calls}
    if getattr(module, "_diff", True) and run.plan:
        out["diff"] = diff
    module.exit_json(**out)


def _yaml(mapping: Mapping[str, list[str]]) -> str:
    lines: list[str] = []
    for key in sorted(mapping):
        lines.append(f"{key}:")
        lines += [f"  - {n}" for n in mapping[key]] or ["  []"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
