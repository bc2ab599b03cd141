#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Reconcile Incus instances in bulk: create in parallel, start, wait for addresses."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_instance
short_description: Reconcile a set of Incus instances with their declaration
description:
  - Reads every instance of every project with their state in one
    C(recursion=2) query. Missing instances are created and started in parallel
    (asynchronous operations), existing ones get the declared config, devices,
    profiles and description, stopped ones are started, then one polling loop
    waits until each is running with its address.
  - With O(record), an instance seen ready (running with its address, a VM's agent
    answering) is kept there with its start time; while Incus has not started it anew it
    is not waited for again, and a run where every instance is so reads them in one
    C(recursion=1) query, without their state (ADR-097).
  - Config keys we do not own (O(ignored_config_prefixes), e.g. C(volatile.*)) are
    left alone; every other key not declared is drift and is removed. Local devices
    must be exactly the declared ones, but for the C(anklume-gui) proxy device of a
    C(make gui) session, which is kept.
  - Managed instances of O(owner) that are no longer declared are orphans; O(state=pruned)
    deletes them except protected ones (C(security.protection.delete=true)).
  - O(state=absent) deletes the listed instances; protected ones are kept unless O(force).
  - On a cluster, an instance with a O(instances[].target) is created on that member.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.change
  - anklume.incus.reconcile
options:
  instances:
    description: Instances to reconcile (or delete with O(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Instance name., type: str, required: true}
      project: {description: Incus project., type: str, required: true}
      type: {description: V(lxc) or V(vm)., type: str, default: lxc}
      image: {description: "Image alias (C(alias), C(local:alias) or C(images:alias)).", type: str}
      profiles: {description: "Profiles in order; V([default]) when not given.", type: list, elements: str}
      config: {description: Instance config keys., type: dict}
      devices: {description: Instance-local devices (eth0 override included)., type: dict}
      description: {description: Free text., type: str}
      ip: {description: "Static IPv4 address to wait for, V('') for any address.", type: str}
      target:
        description:
          - Cluster member to create the instance on (C(POST /1.0/instances?target=MEMBER)); V('')
            lets Incus's scheduler place it. An existing instance on another member is not
            moved; the plan gets an V(info) entry and a warning with the C(incus move) that fixes it.
        type: str
        default: ""
  declared:
    description: "Every instance the infra declares, as C(PROJECT/NAME) (a bare C(NAME) matches it in any project)."
  force: {description: "With O(state=absent), delete protected instances too.", type: bool, default: false}
  wait: {description: Wait until every instance runs with its address., type: bool, default: true}
  record:
    description:
      - A JSON file on the controller where each instance seen ready is kept with its start time (C(last_used_at)) and addresses.
      - V('') for none (every run reads the instances' state).
    type: str
    default: ""
  snapshot_before_change:
    description:
      - Snapshot an instance (C(anklume-pre-apply-<UTC time>)) before changing its config, devices or profiles, so C(make rollback) can take the change back.
      - A start alone is no change. The oldest such snapshots beyond O(snapshot_keep) are deleted.
    type: bool
    default: false
  snapshot_keep: {description: Pre-apply snapshots kept per instance (the newest)., type: int, default: 1}
  timeout: {description: Seconds to wait for instances to run with their address., type: int, default: 120}
  vm_timeout:
    description: Seconds to wait for a virtual machine to run, have its address and an answering agent (a VM boots in about 30 s).
    type: int
    default: 600
  vm_config:
    description: "Config every V(vm) instance gets unless it declares the key: C(limits.cpu), C(limits.memory), C(security.secureboot)."
    type: dict
    default: {}
  parallel:
    description: Incus operations (create, start, stop, delete) run at a time; each is awaited as soon as it starts, see ADR-022.
    type: int
    default: 8
  ignored_config_prefixes:
    description: Config keys we leave alone (C(user.anklume.*) is always ours).
    type: list
    elements: str
    default: [volatile., image., user.]
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Reconcile instances
  anklume.incus.incus_instance:
    instances:
      - name: pro-dev
        project: pro
        image: anklume/debian-12
        profiles: [default]
        config: {security.protection.delete: "true"}
        devices: {eth0: {type: nic, network: net-pro, name: eth0, ipv4.address: 10.100.2.10}}
        ip: 10.100.2.10
"""

RETURN = r"""
plan:
  description: >-
    One entry per instance (C(kind=instance)) created, changed, removed, kept, left alone or
    orphaned (entry keys in the notes): C(action) is V(create), V(change), V(remove), V(keep)
    (protected), V(foreign) (not ours), V(orphan), V(conflict) or V(info) (on another
    cluster member than its target: not moved, C(reason) says so); C(keys) are C(config.*),
    C(devices.*), C(profiles), C(description) or C(state).
  type: list
  elements: dict
  returned: always
  sample: [{kind: instance, name: pro-dev, project: pro, action: change, keys: [state]}]
orphans: {description: "Managed instances no longer declared (C(project/name)).", type: list, elements: str, returned: always}
addresses: {description: Instance name to the IPv4 addresses seen., type: dict, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: always}
step: {description: What the module was doing when it failed., type: str, returned: failure}
"""

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import project_limits, reconcile
from ansible_collections.anklume.incus.plugins.module_utils.state_probe import (
    read_record,
    write_record,
)

TYPES = {"lxc": "container", "container": "container",
         "vm": "virtual-machine", "virtual-machine": "virtual-machine"}
PROTECT = "security.protection.delete"
# The names of the snapshots taken before a change (make rollback restores the newest).
PRE_APPLY = "anklume-pre-apply-"
# The marker of a disposable (anklume/ops/disp_live.py MARK, pinned by test_one_home.py).
DISPOSABLE_KEY = "user.anklume.disposable"
# The proxy device of a `make gui` session (anklume/model.py GUI_DEVICE, ADR-091): added
# and removed by make gui, never declared; an existing one is kept, not drift.
GUI_DEVICE = "anklume-gui"


def image_source(image: str) -> dict[str, str]:
    remote, alias = image.rsplit(":", 1) if ":" in image else ("", image)
    source = {"type": "image", "alias": alias}
    if remote == "images":
        source.update(server="https://images.linuxcontainers.org", protocol="simplestreams")
    return source


def needs_new_lease(current: Mapping[str, Any] | None,
                    wanted: Mapping[str, Any] | None) -> bool:
    """An eth device changed in more than its security.* filters (which Incus applies live):
    a new static address reaches the instance only through a fresh DHCP request."""
    def lease(device: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (device or {}).items() if not k.startswith("security.")}
    current, wanted = current or {}, wanted or {}
    return any(incus.stringify(lease(current.get(k))) != incus.stringify(lease(wanted.get(k)))
               or (k in current) != (k in wanted)
               for k in set(current) | set(wanted) if k.startswith("eth"))


def budget_refusals(text: str) -> str | None:
    """TEXT (operations' errors joined by "; ") with each budget refusal explained in one
    line (project_limits.explain); None when none of them is one."""
    head, sep, rest = text.partition(" operations failed: ")
    parts = (rest if sep else text).split("; ")
    lines = [project_limits.explain(part) for part in parts]
    if not any(lines):
        return None
    body = "; ".join(line or part for line, part in zip(lines, parts, strict=True))
    return f"{head}{sep}{body}" if sep else body


def agent_answers(inst: Mapping[str, Any]) -> bool:
    """A VM's agent answers once Incus can read its processes (-1 or absent before)."""
    if (inst or {}).get("type") != "virtual-machine":
        return True
    return int((inst.get("state") or {}).get("processes") or -1) > 0


def ready(inst: Mapping[str, Any] | None, ip: str) -> bool:
    if not inst or inst.get("status") != "Running" or not agent_answers(inst):
        return False
    addrs = incus.ipv4s(inst)
    return ip in addrs if ip else bool(addrs)


def instance_type(spec: Mapping[str, Any]) -> str:
    return TYPES.get(spec.get("type") or "lxc", "container")


def wanted_config(spec: Mapping[str, Any], owner: str | None,
                  vm_config: Mapping[str, Any]) -> dict[str, str]:
    """The instance's config: a VM gets ``vm_config`` under its own keys, then our markers."""
    config = incus.stringify(vm_config) if instance_type(spec) == "virtual-machine" else {}
    config.update(incus.stringify(spec.get("config")))
    config.update(incus.markers(owner))
    return config


def create_request(spec: Mapping[str, Any], config: dict[str, str],
                   devices: dict[str, dict[str, str]], profiles: list[str]) -> dict[str, Any]:
    """The POST /1.0/instances body that creates and starts ``spec``."""
    return {"name": spec["name"], "type": instance_type(spec),
            "description": spec.get("description") or "",
            "source": image_source(spec.get("image") or ""),
            "profiles": profiles, "config": config, "devices": devices, "start": True}


def create_path(spec: Mapping[str, Any]) -> str:
    """Where the create goes: on the declared cluster member, else where Incus places it."""
    target = spec.get("target") or ""
    return f"/1.0/instances?target={incus.qname(target)}" if target else "/1.0/instances"


def misplaced(spec: Mapping[str, Any], inst: Mapping[str, Any] | None) -> str | None:
    """The one line for an instance that runs on another member than its target, or None.
    anklume does not move it: a move stops the instance and copies it to the other member."""
    target = spec.get("target") or ""
    location = (inst or {}).get("location") or ""
    if not target or location in ("", "none", target):
        return None
    return (f"instance {spec['name']} (project {spec['project']}) is on cluster member "
            f"{location}, infra.yml puts it on {target}: not moved (a move stops it); move it "
            f"with `incus move {spec['name']} --project {spec['project']} --target {target}` "
            f"(stopped first), or set its target: {location}")


def not_ready(spec: Mapping[str, Any], inst: Mapping[str, Any]) -> str:
    """What an instance still lacks, for the timeout message."""
    text = "{} (status {}, addresses {}, want {}".format(
        spec["name"], inst.get("status"), incus.ipv4s(inst) or "none", spec.get("ip") or "any")
    if inst.get("type") == "virtual-machine" and not agent_answers(inst):
        text += ", agent not answering: the image needs incus-agent"
    return text + ")"


class Instances(reconcile.ProjectObjectReconciler):
    """The skeleton, with instances created, started, stopped and deleted in parallel
    operations (ADR-022): ``create``, ``update`` and ``delete`` gather them, ``present``
    and ``remove`` run them after the skeleton's loop."""

    KIND = "instance"
    ITEMS = "instances"
    READING = "reading instances"

    def __init__(self, module: reconcile.Module, name: str, client: Any = None) -> None:
        super().__init__(module, name, client)
        self.p = module.params
        self.addresses: dict[str, list[str]] = {}
        self.seen = read_record(self.p["record"]) if self.p["record"] else {}

    def read(self) -> dict[tuple[str, str], reconcile.Obj]:
        # With a record, the state is read only when an instance is to be waited for.
        return self.client.instances(state=not self.p["record"])

    def record_key(self, spec: reconcile.Spec) -> str:
        return f"{self.p['remote']}:{spec['project']}/{spec['name']}"

    def seen_ready(self, spec: reconcile.Spec, inst: reconcile.Obj | None) -> bool:
        """Running, and seen ready with the declared address since Incus last started it."""
        seen = self.seen.get(self.record_key(spec))
        if not inst or inst.get("status") != "Running" or not isinstance(seen, dict):
            return False
        return (bool(seen.get("started")) and seen.get("started") == inst.get("last_used_at")
                and seen.get("ip") == (spec.get("ip") or ""))

    def keep_ready(self, specs: list[reconcile.Spec],
                   current: dict[tuple[str, str], reconcile.Obj]) -> None:
        """Record SPECS, all just seen ready in CURRENT; forget instances Incus no longer has."""
        mine = f"{self.p['remote']}:"
        here = {f"{mine}{k[0]}/{k[1]}" for k in current}
        kept = {k: v for k, v in self.seen.items() if not k.startswith(mine) or k in here}
        for spec in specs:
            inst = current.get(self.key(spec)) or {}
            kept[self.record_key(spec)] = {"started": inst.get("last_used_at"),
                                           "ip": spec.get("ip") or "",
                                           "addresses": incus.ipv4s(inst)}
        if kept != self.seen:
            write_record(self.p["record"], kept)

    def fail(self, msg: str, **extra: Any) -> None:
        # An instance refused by its domain's budget (ADR-086): one line per refusal,
        # naming the domain, the limit and the fix, instead of Incus's own text.
        head, sep, body = msg.partition(f"{self.name}: ")
        line = budget_refusals(body) if sep and not head else None
        super().fail(f"{self.name}: {line}" if line else msg, **extra)

    def plan_name(self, key: tuple[str, str]) -> str:
        return key[1]

    def is_declared(self, key: tuple[str, str], declared: set[str]) -> bool:
        """ADR-053: a machine is declared in its domain's project only (PROJECT/NAME; a
        bare NAME matches any project), so the instance a moved machine left in its old
        project is an orphan (kept when protected)."""
        return self.ident(key) in declared or key[1] in declared

    def orphan_order(self, key: tuple[str, str]) -> tuple[str, str]:
        return key

    def may_be_orphan(self, key: tuple[str, str], obj: reconcile.Obj) -> bool:
        """A disposable (`make disp`, ADR-084) is declared by no file: never an orphan."""
        return DISPOSABLE_KEY not in (obj.get("config") or {})

    def extra(self) -> dict[str, Any]:
        return {"addresses": self.addresses}

    def url(self, name: str, suffix: str = "") -> str:
        return f"/1.0/instances/{incus.qname(name)}{suffix}"

    def owned_key(self, key: str) -> bool:
        if key.startswith("user.anklume."):
            return True
        return not any(key.startswith(p) for p in self.p["ignored_config_prefixes"])

    def wanted_config(self, spec: reconcile.Spec) -> dict[str, str]:
        return wanted_config(spec, self.p["owner"], self.p.get("vm_config") or {})

    def status(self, name: str, project: str | None) -> str | None:
        """The instance's status now ("Running", "Stopped"), None when it does not exist."""
        inst = self.client.find(self.url(name), project=project, what=f"reading instance {name}")
        status: str | None = inst.get("status") if inst else None
        return status

    def expect(self, name: str, project: str | None,
               status: str | None) -> Callable[[], bool | str]:
        """verify() for an operation: True once the instance has ``status``."""
        def verify() -> bool | str:
            now = self.status(name, project)
            return now == status or f"instance {name} is {now or 'absent'}, not {status or 'absent'}"
        return verify

    def state_op(self, inst: reconcile.Obj, action: str, what: str) -> incus.Operation:
        data: dict[str, Any] = {"action": action, "timeout": 30}
        if action in ("stop", "restart"):
            data["force"] = True
        status = "Stopped" if action == "stop" else "Running"
        return incus.Operation(what, self.url(inst["name"], "/state"), "PUT", data,
                               project=inst["project"],
                               verify=self.expect(inst["name"], inst["project"], status))

    def wait_seconds(self, specs: Iterable[reconcile.Spec] | None = None) -> int:
        """The wait budget: ``timeout``, or ``vm_timeout`` when a VM is among ``specs``."""
        vm = any(instance_type(s) == "virtual-machine" for s in specs or self.p["instances"])
        seconds: int = max(self.p["timeout"], self.p.get("vm_timeout") or 0) if vm \
            else self.p["timeout"]
        return seconds

    def run_ops(self, ops: list[incus.Operation], label: str) -> None:
        self.run_operations(ops, label, timeout=self.wait_seconds() + 60)

    # -- present ------------------------------------------------------------------
    def busy_operations(self, keys: Collection[tuple[str, str]]) -> list[incus.Operation]:
        """Task operations still running on our instances (e.g. a create whose apply was
        killed: Incus finishes it on its own)."""
        wanted = {f"/1.0/instances/{incus.qname(name)}?project={project}" for project, name in keys}
        wanted |= {f"/1.0/instances/{incus.qname(name)}" for project, name in keys
                   if project == "default"}
        ops = self.client.get("/1.0/operations", params={"recursion": 1, "all-projects": "true"},
                              what="listing running operations") or {}
        busy = []
        for op in ops.get("running") or []:
            if op.get("class") != "task":
                continue
            urls = set((op.get("resources") or {}).get("instances") or [])
            if urls & wanted:
                # If it ends before we wait, fine: the instances are read again after.
                # (A def, not a lambda: mypy cannot type a lambda whose default binds the id.)
                def start(i: str = op["id"]) -> str:
                    return i
                busy.append(incus.Operation(f"waiting for a running operation "
                                            f"({op.get('description')})",
                                            start=start, verify=lambda: True))
        return busy

    def settle(self, current: dict[tuple[str, str], reconcile.Obj],
               keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], reconcile.Obj]:
        """Wait for the operations an earlier run left going on ``keys`` (a create that
        timed out on our side goes on in Incus); return the instances read again. Read
        again also when none is busy: CURRENT may be the run's shared read (ADR-077), taken
        before such an operation ended, and a start must not be asked of a running one."""
        busy = self.busy_operations(keys)
        if not busy:
            return self.client.instances(state=True)
        self.step = "waiting for operations started by an earlier run"
        try:
            self.run_ops(busy, "waited for")
        except incus.IncusError as exc:
            self.warnings.append(f"an earlier operation failed: {exc}")
        return self.client.instances(state=True)

    def present(self, specs: list[reconcile.Spec]) -> None:
        """The skeleton's create / foreign / update per instance, with the creates, starts
        and restarts gathered into parallel operations, then the wait for addresses."""
        self.creates: list[incus.Operation] = []
        self.ops: list[incus.Operation] = []
        self.to_wait: list[reconcile.Spec] = []
        unsettled = [k for k in map(self.key, specs)
                     if k in self.current and self.current[k].get("status") != "Running"]
        if unsettled and not self.check_mode:
            self.current = self.settle(self.current, unsettled)
        super().present(specs)
        if self.check_mode:
            return
        self.step = "creating instances"
        self.run_ops(self.creates, "created")
        self.step = "starting instances"
        self.run_ops(self.ops, "started")
        if self.p["wait"] and self.to_wait:
            self.wait_ready(self.to_wait, self.current if not (self.creates or self.ops) else None)

    def wanted(self, spec: reconcile.Spec) -> reconcile.Wanted:
        config = self.wanted_config(spec)
        devices = {k: incus.stringify(v) for k, v in (spec.get("devices") or {}).items()}
        return reconcile.Wanted(config, spec.get("description") or "", devices)

    def create(self, spec: reconcile.Spec) -> None:
        name, project = spec["name"], spec["project"]
        want = self.wanted(spec)
        config, devices = want.config, want.devices
        profiles = list(spec.get("profiles") or ["default"])
        self.to_wait.append(spec)
        entry = self.entry(self.key(spec), "create")
        entry["image"] = spec.get("image") or ""  # the plan says what it is made from
        self.change(entry,
                    incus.diff_entry(f"instance {name}", None, {
                        "type": instance_type(spec), "image": spec.get("image"),
                        "profiles": profiles, "config": config, "devices": devices,
                        **({"target": spec["target"]} if spec.get("target") else {})}))
        if not self.check_mode:
            self.step = f"creating instance {name} in project {project}"
            self.creates.append(incus.Operation(self.step, create_path(spec), "POST",
                                                create_request(spec, config, devices, profiles),
                                                project=project,
                                                verify=self.expect(name, project, "Running")))

    def update(self, spec: reconcile.Spec, cur: reconcile.Obj) -> None:
        name, key = spec["name"], self.key(spec)
        config, desc, devices = self.wanted(spec)
        session = (cur.get("devices") or {}).get(GUI_DEVICE)
        if session is not None:
            devices = {**devices, GUI_DEVICE: session}
        profiles = list(spec.get("profiles") or ["default"])
        self.to_wait.append(spec)
        where = misplaced(spec, cur)
        if where:
            entry = self.entry(key, "info")
            entry["reason"] = where
            self.note(entry, where)
        itype = instance_type(spec)
        if cur.get("type") != itype:
            self.warnings.append(f"instance {name} is a {cur.get('type')}, declared {itype}: "
                                 "delete it to recreate")
        cur_config = cur.get("config") or {}
        removed = sorted(k for k in cur_config if k not in config and self.owned_key(k))
        keys = [f"config.{k}" for k, v in sorted(config.items()) if cur_config.get(k) != v]
        keys += [f"config.{k}" for k in removed]
        keys += incus.devices_changes(cur.get("devices"), devices)
        if list(cur.get("profiles") or []) != profiles:
            keys.append("profiles")
        if (cur.get("description") or "") != desc:
            keys.append("description")
        running = cur.get("status") == "Running"
        if not running:
            keys.append("state")
        if not keys:
            return
        self.change(self.entry(key, "change", keys))
        new_config = {k: v for k, v in cur_config.items() if k not in removed}
        new_config.update(config)
        if keys != ["state"]:
            self.diffs.append(incus.diff_entry(
                f"instance {name}",
                {"config": {k: v for k, v in cur_config.items() if self.owned_key(k)},
                 "devices": cur.get("devices"), "profiles": cur.get("profiles"),
                 "status": cur.get("status")},
                {"config": {k: v for k, v in new_config.items() if self.owned_key(k)},
                 "devices": devices, "profiles": profiles, "status": "Running"}))
        if self.check_mode:
            return
        if keys != ["state"]:
            if self.p["snapshot_before_change"]:
                self.snapshot_first(name, spec["project"])
            self.step = f"updating instance {name}"
            self.client.query(self.url(name), "PUT", project=spec["project"], what=self.step,
                              data={"architecture": cur.get("architecture"),
                                    "config": new_config, "devices": devices,
                                    "profiles": profiles, "description": desc,
                                    "ephemeral": cur.get("ephemeral", False),
                                    "stateful": cur.get("stateful", False)})
        if cur.get("status") == "Frozen":  # paused (an interrupted backup): Incus resumes it
            self.ops.append(self.state_op(cur, "unfreeze", f"resuming frozen instance {name}"))
        elif not running:
            self.ops.append(self.state_op(cur, "start", f"starting instance {name}"))
        elif needs_new_lease(cur.get("devices"), devices):
            self.ops.append(self.state_op(cur, "restart", f"restarting instance {name}"))

    def snapshot_first(self, name: str, project: str) -> None:
        """A pre-apply snapshot of NAME as it is now, then the older ones beyond the kept
        number deleted (ADR-088: make rollback restores the newest)."""
        url = self.url(name, "/snapshots")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.step = f"snapshotting instance {name} before changing it"
        self.client.query(url, "POST", project=project, what=self.step,
                          data={"name": f"{PRE_APPLY}{stamp}"})
        listed = self.client.query(url, project=project, what=self.step) or []
        names = (str(u).split("?", maxsplit=1)[0].rsplit("/", 1)[-1] for u in listed)
        taken = sorted(n for n in names if n.startswith(PRE_APPLY))
        for old in taken[:-max(1, self.p["snapshot_keep"])]:
            self.step = f"deleting the older pre-apply snapshot {old} of {name}"
            self.client.query(self.url(name, f"/snapshots/{old}"), "DELETE", project=project,
                              what=self.step)

    def wait_ready(self, specs: list[reconcile.Spec],
                   current: dict[tuple[str, str], reconcile.Obj] | None) -> None:
        self.step = "waiting for instances to run with their address (and VMs' agent)"
        if current is not None and self.p["record"]:
            if all(self.seen_ready(s, current.get(self.key(s))) for s in specs):
                self.addresses = {k.split("/", 1)[1]: list(v.get("addresses") or [])
                                  for k, v in self.seen.items()
                                  if k.startswith(f"{self.p['remote']}:")}
                return
            current = None  # an instance to wait for: read the state
        seconds = self.wait_seconds(specs)
        deadline = time.monotonic() + seconds
        while True:
            if current is None:
                current = self.client.instances(state=True)
            missing = [s for s in specs
                       if not ready(current.get((s["project"], s["name"])), s.get("ip") or "")]
            self.addresses = {k[1]: incus.ipv4s(v) for k, v in current.items()}
            if not missing:
                if self.p["record"]:
                    self.keep_ready(specs, current)
                return
            if time.monotonic() >= deadline:
                raise incus.IncusError("{}: still not ready after {}s: {}".format(
                    self.step, seconds, ", ".join(
                        not_ready(s, current.get((s["project"], s["name"])) or {})
                        for s in missing)))
            time.sleep(0.25)
            current = None

    # -- absent / pruned -------------------------------------------------------
    def remove(self, keys: list[tuple[str, str]]) -> None:
        """The skeleton's managed check and keep / remove per instance; the stops and
        deletes run after, in parallel operations."""
        self.stops: list[incus.Operation] = []
        self.deletes: list[reconcile.Obj] = []
        if not self.check_mode:
            self.current = self.settle(self.current, [k for k in keys if k in self.current])
        super().remove(keys)
        self.step = "stopping instances"
        self.run_ops(self.stops, "stopped")
        self.step = "deleting instances"
        self.run_ops([incus.Operation("deleting instance {}".format(c["name"]), self.url(c["name"]),
                                      "DELETE", project=c["project"],
                                      verify=self.expect(c["name"], c["project"], None))
                      for c in self.deletes], "deleted")

    def protected(self, cur: reconcile.Obj) -> bool:
        return (cur.get("config") or {}).get(PROTECT) == "true"

    def keep_reason(self, key: tuple[str, str], cur: reconcile.Obj) -> str:
        # Protected instances go only with force, and only when named (state absent).
        force = self.p["force"] and self.p["state"] == "absent"
        if self.protected(cur) and not force:
            return "it is protected (ephemeral: false); FORCE=1 deletes it"
        return ""

    def removal_diff(self, key: tuple[str, str], cur: reconcile.Obj) -> dict[str, Any] | None:
        return incus.diff_entry(self.label(key), {"status": cur.get("status"),
                                                  "profiles": cur.get("profiles")}, None)

    def delete(self, key: tuple[str, str], cur: reconcile.Obj) -> None:
        name, project = key[1], key[0]
        if self.protected(cur):
            self.step = f"lifting the delete protection of {name}"
            self.client.query(self.url(name), "PATCH", project=project, what=self.step,
                              data={"config": {PROTECT: "false"}})
        if cur.get("status") != "Stopped":
            self.stops.append(self.state_op(cur, "stop", f"stopping instance {name}"))
        self.deletes.append(cur)


ARGUMENT_SPEC = dict(
    instances=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        project=dict(type="str", required=True),
        type=dict(type="str", default="lxc"),
        image=dict(type="str"),
        profiles=dict(type="list", elements="str"),
        config=dict(type="dict"),
        devices=dict(type="dict"),
        description=dict(type="str"),
        ip=dict(type="str"),
        target=dict(type="str", default=""),
    )),
    **reconcile.RECONCILE_OPTIONS,
    force=dict(type="bool", default=False),
    wait=dict(type="bool", default=True),
    record=dict(type="str", default=""),
    snapshot_before_change=dict(type="bool", default=False),
    snapshot_keep=dict(type="int", default=1),
    timeout=dict(type="int", default=120),
    vm_timeout=dict(type="int", default=600),
    vm_config=dict(type="dict", default={}),
    parallel=dict(type="int", default=incus.DEFAULT_PARALLEL),
    ignored_config_prefixes=dict(type="list", elements="str",
                                 default=["volatile.", "image.", "user."]),
)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_module(ARGUMENT_SPEC, Instances, "incus_instance", module, client)


if __name__ == "__main__":
    main()
