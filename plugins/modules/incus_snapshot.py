# AnKLuMe: create, restore, delete and list Incus snapshots, in bulk.
# SPDX-License-Identifier: AGPL-3.0-or-later
"""Ansible module ``incus_snapshot``: one call for every targeted instance."""

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
  - C(state=present) creates the snapshot where it is missing (a no-op where it exists;
    O(force=true) replaces it). C(state=restored) and C(state=absent) fail, before
    touching anything, when an instance lacks the snapshot, naming the instance and the
    snapshot. C(state=listed) changes nothing and returns the snapshots.
  - Protection (C(security.protection.delete)) guards the instance, not its history, so
    restoring a protected instance and deleting its snapshots are allowed.
  - Supports check mode and C(--diff) (the snapshot names of each instance, before and
    after).
options:
  instances:
    description:
      - The instances to act on, each C({name, project}); the project defaults to
        C(default).
      - With C(state=listed), instances that do not exist are left out instead of failing.
    type: list
    elements: dict
    default: []
  name:
    description: Snapshot name; required unless C(state=listed).
    type: str
  state:
    description: What to do with the snapshot.
    type: str
    choices: [present, absent, restored, listed]
    default: present
  force:
    description: With C(state=present), replace a snapshot that already exists.
    type: bool
    default: false
  stateful:
    description: Take a stateful snapshot (running state too; needs CRIU).
    type: bool
    default: false
  remote:
    description: Incus remote (C(local) is the local socket).
    type: str
    default: local
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
author:
  - AnKLuMe
"""

EXAMPLES = r"""
- name: Snapshot two instances in one call
  incus_snapshot:
    instances:
      - {name: pro-dev, project: pro}
      - {name: perso-desk, project: perso}
    name: before-upgrade

- name: Roll them back
  incus_snapshot:
    instances: [{name: pro-dev, project: pro}]
    name: before-upgrade
    state: restored
"""

RETURN = r"""
results:
  description: One entry per targeted instance.
  returned: always
  type: list
  elements: dict
  sample:
    - {instance: pro-dev, project: pro, snapshot: s1, action: created}
snapshots:
  description: The snapshots of the targeted instances after the call, oldest first.
  returned: always
  type: list
  elements: dict
  sample:
    - {instance: pro-dev, project: pro, name: s1, created_at: "2026-01-01T10:00:00Z"}
api_calls:
  description: Number of Incus REST calls the module made.
  returned: always
  type: int
"""


from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (  # noqa: E402
    DEFAULT_PARALLEL,
    IncusClient,
    IncusError,
    Operation,
    qname,
)

ACTIONS = {"present": "created", "absent": "deleted", "restored": "restored"}


def _inventory(client: IncusClient, what: str) -> dict:
    """Every instance with its snapshots, in one call: (project, name) -> instance."""
    listing = client.get("/1.0/instances", params={"recursion": 2, "all-projects": "true"},
                         what=what)
    return {((i.get("project") or "default"), i["name"]): i for i in listing or []}


def _date(value: str | None) -> str:
    """Incus writes the zero time for "never"; return "" for it."""
    return "" if not value or value.startswith("0001-01-01") else value


def _snapshot_rows(inst: dict) -> list[dict]:
    rows = []
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


def _targets(module: AnsibleModule, inventory: dict) -> list[tuple[str, str]]:
    """Resolve the requested instances to (project, name), failing on unknown ones."""
    wanted = module.params["instances"]
    out, missing = [], []
    for item in wanted:
        name = str(item.get("name") or "")
        project = str(item.get("project") or "default")
        if not name:
            module.fail_json(msg=f"incus_snapshot: an entry of 'instances' has no name: {item}")
        if (project, name) not in inventory:
            missing.append(f"{name} (project {project})")
        elif (project, name) not in out:
            out.append((project, name))
    if missing and module.params["state"] != "listed":
        module.fail_json(
            msg="incus_snapshot: instance not found in Incus: "
            + ", ".join(missing)
            + " (create it first: make apply)"
        )
    return out


def _operation(client: IncusClient, r: dict, snap: str, action: str, stateful: bool) -> Operation:
    """The Incus operation for one instance, with how to check its result (ADR-022)."""
    inst, project = r["instance"], r["project"]
    base = f"/1.0/instances/{qname(inst)}"
    path = f"{base}/snapshots/{qname(snap)}"
    where = f"of instance '{inst}' (project {project})"

    def exists() -> bool:
        return client.find(path, project=project, what=f"reading snapshot '{snap}' {where}") \
            is not None

    if action == "delete":
        return Operation(f"deleting snapshot '{snap}' {where}", path, "DELETE", project=project,
                         verify=lambda: not exists())
    if action == "create":
        return Operation(f"creating snapshot '{snap}' {where}", f"{base}/snapshots", "POST",
                         {"name": snap, "stateful": stateful}, project=project, verify=exists)
    # A restore leaves nothing to read back: a dropped one is reported as unknown.
    return Operation(f"restoring instance '{inst}' (project {project}) from snapshot '{snap}'",
                     base, "PUT", {"restore": snap}, project=project)


ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "default": []},
    "name": {"type": "str"},
    "state": {
        "type": "str",
        "default": "present",
        "choices": ["present", "absent", "restored", "listed"],
    },
    "force": {"type": "bool", "default": False},
    "stateful": {"type": "bool", "default": False},
    "remote": {"type": "str", "default": "local"},
    "timeout": {"type": "int", "default": 600},
    "parallel": {"type": "int", "default": DEFAULT_PARALLEL},
}


def main(module=None) -> None:
    """Run as a module, or in the controller through the anklume action plugin (ADR-013)."""
    module = module or AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["state"] != "listed" and not module.params["name"]:
        module.fail_json(msg=f"incus_snapshot: state={module.params['state']} needs a name")
    p = module.params
    state, snap, timeout = p["state"], p["name"], p["timeout"]
    client = IncusClient(remote=p["remote"], timeout=timeout + 30)

    try:
        inventory = _inventory(client, "listing instances and their snapshots")
    except IncusError as exc:
        module.fail_json(msg=str(exc))
    targets = _targets(module, inventory)

    def names_of(key: tuple[str, str]) -> list[str]:
        return [r["name"] for r in _snapshot_rows(inventory[key])]

    if state == "listed":
        rows = [row for key in targets for row in _snapshot_rows(inventory[key])]
        module.exit_json(changed=False, results=[], snapshots=rows, api_calls=client.calls)

    # Decide everything first: a missing snapshot fails the whole call before any change.
    results, missing = [], []
    for project, name in targets:
        has = snap in names_of((project, name))
        if state == "present":
            action = ("replaced" if p["force"] else "none") if has else "created"
        elif not has:
            missing.append(f"instance '{name}' (project {project}) has no snapshot '{snap}'")
            action = "none"
        else:
            action = ACTIONS[state]
        results.append({"instance": name, "project": project, "snapshot": snap, "action": action})
    if missing:
        module.fail_json(
            msg=f"incus_snapshot: cannot {'restore' if state == 'restored' else 'delete'} "
            f"snapshot '{snap}': " + "; ".join(missing) + " (see: make snapshot-list)",
            results=results,
        )

    todo = [r for r in results if r["action"] != "none"]
    diff = {"before": {}, "after": {}}
    for r in results:
        key = f"{r['project']}/{r['instance']}"
        before = names_of((r["project"], r["instance"]))
        after = list(before)
        if r["action"] == "created":
            after.append(snap)
        elif r["action"] == "deleted":
            after.remove(snap)
        elif r["action"] == "replaced":
            after = [n for n in after if n != snap] + [snap]
        diff["before"][key] = before
        diff["after"][key] = after
        if r["action"] == "restored":
            diff["after"][key] = [*after, f"(restored from {snap})"]

    if todo and not module.check_mode:
        progress = getattr(module, "progress", None)
        steps = [("delete", "deleted", ("deleted", "replaced")),
                 ("create", "created", ("created", "replaced")),
                 ("restore", "restored", ("restored",))]
        try:
            for action, label, wanted in steps:
                client.run_operations(
                    [_operation(client, r, snap, action, p["stateful"])
                     for r in todo if r["action"] in wanted],
                    p["parallel"], progress=progress, label=f"incus_snapshot: {label}",
                    timeout=timeout)
        except IncusError as exc:
            module.fail_json(msg=f"incus_snapshot: {exc}", results=results)
        # Re-read the snapshots, for a truthful returned list.
        try:
            inventory = _inventory(client, "listing snapshots after the change")
        except IncusError as exc:
            module.fail_json(msg=str(exc), results=results)

    rows = [row for key in targets if key in inventory for row in _snapshot_rows(inventory[key])]
    out = {"changed": bool(todo), "results": results, "snapshots": rows, "api_calls": client.calls}
    if getattr(module, "_diff", True) and todo:
        out["diff"] = {
            "before_header": f"snapshots ({state} {snap})",
            "after_header": f"snapshots ({state} {snap})",
            "before": _yaml(diff["before"]),
            "after": _yaml(diff["after"]),
        }
    module.exit_json(**out)


def _yaml(mapping: dict) -> str:
    lines = []
    for key in sorted(mapping):
        lines.append(f"{key}:")
        lines += [f"  - {n}" for n in mapping[key]] or ["  []"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
