#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Before provisioning: is each instance declared, present, running and booted?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_ready
short_description: Check, before provisioning, that each instance exists, runs and has booted
description:
  - Reads every instance of every project in one C(recursion=1) query, then, in parallel,
    runs one short C(incus exec) in each running instance that waits until its init has
    finished booting (C(systemctl is-system-running --wait), bounded) and prints a marker.
    A probe whose answer is lost or incomplete is simply run again until O(timeout).
  - A container that Incus started more than O(timeout) seconds ago has had the time its
    boot is given, so it gets no probe (ADR-078); nor does one whose boot a probe saw
    finish since Incus last started it (O(record), ADR-082). On a no-op apply no instance
    is then asked twice, the provision play's state probe being its first C(incus exec). A
    VM is always probed, since its agent may not answer.
  - Never fails by itself. It returns, per host, one line saying what is wrong and how to
    fix it (not declared in infra.yml, instance or project missing, instance stopped, not
    answering), so the provision play can stop exactly those hosts with a readable message.
  - Changes nothing in Incus (only its O(record)); check mode runs the same read-only probes.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.check
options:
  instances:
    description: The hosts to check.
    type: list
    elements: dict
    default: []
    suboptions:
      host: {description: Inventory host name., type: str, required: true}
      name: {description: Instance name., type: str, required: true}
      project: {description: Incus project., type: str, required: true}
      declared: {description: False when infra.yml (group_vars/all.yml) no longer declares the host., type: bool, default: true}
  timeout: {description: Seconds to wait for every instance to finish booting., type: int, default: 120}
  record:
    description:
      - A JSON file on the controller where the start time (C(last_used_at)) of each container
        seen booted is kept; such a container is not probed again until Incus starts it anew.
        Empty for none.
    type: str
    default: ""
  parallel: {description: "Probes run at a time (anklume_incus_parallel, make PARALLEL=n).", type: int, default: 8}
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the instances before provisioning
  anklume.incus.incus_ready:
    instances: [{host: pro-dev, name: pro-dev, project: pro}]
  register: ready
"""

RETURN = r"""
problems: {description: Host to a one-line reason it cannot be provisioned (absent when ready)., type: dict, returned: always}
ready: {description: Hosts that are ready., type: list, elements: str, returned: always}
probes: {description: C(incus exec) probes run (more than one per host means a retry)., type: int, returned: always}
booting: {description: "The hosts whose boot was waited for: not seen booted since Incus last started them.", type: list, elements: str, returned: always}
incus_calls: {description: Incus REST calls made., type: int, returned: success}
"""

import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile
from ansible_collections.anklume.incus.plugins.module_utils.state_probe import (
    read_record,
    write_record,
)

MARKER = "anklume-ready"
# Wait (bounded) for the init to finish booting where it is systemd; print the marker in
# every case: a probe answer without it was lost or cut, and is asked again.
PROBE = ("if command -v systemctl >/dev/null 2>&1; then "
         "timeout {wait} systemctl is-system-running --wait >/dev/null 2>&1; fi; "
         f"echo {MARKER}")


def probe(client: incus.IncusClient, name: str, project: str, wait: int) -> tuple[bool, str]:
    """One `incus exec`: (True, '') when the instance answered with the marker."""
    cmd = [client.binary, "exec", "--project", project,
           f"{client.remote}:{name}", "--", "/bin/sh", "-c", PROBE.format(wait=wait)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 30,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, "no answer"
    if MARKER in proc.stdout:
        return True, ""
    err = (proc.stderr or "").strip().removeprefix("Error: ")
    return False, err or "empty answer"


def started_long_ago(inst: Mapping[str, Any], now: datetime, seconds: int) -> bool:
    """A running container that Incus started (``last_used_at``) more than SECONDS ago."""
    if inst.get("type") != "container" or inst.get("status") != "Running":
        return False
    try:  # "2026-12-06T08:42:21.617246281Z": the seconds are enough
        started = datetime.strptime(str(inst.get("last_used_at", ""))[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return (now - started.replace(tzinfo=UTC)).total_seconds() > seconds


def fix_line(spec: Mapping[str, Any], inst: Mapping[str, Any] | None, why: str = "") -> str:
    """What is wrong with one host and how to fix it, on one line."""
    name, project = spec["name"], spec["project"]
    if not spec.get("declared", True):
        return (f"{spec['host']}: not declared in infra.yml (stale inventory): run `make sync`, "
                "which removes its inventory entry")
    if inst is None:
        return (f"{spec['host']}: instance {name} does not exist in Incus project {project}: "
                "run `make apply` (its infra phase creates it)")
    status = inst.get("status")
    if status != "Running":
        return (f"{spec['host']}: instance {name} (project {project}) is {status}: "
                f"run `make apply` (it starts it) or `incus start --project {project} {name}`")
    return (f"{spec['host']}: instance {name} (project {project}) runs but does not answer "
            f"`incus exec` ({why}): see `incus info --show-log --project {project} {name}`")


def booted_since(inst: Mapping[str, Any], seen: object) -> bool:
    """A running container whose boot a probe saw finish (SEEN: its start time then) since
    Incus last started it: the same start time."""
    return (inst.get("type") == "container" and inst.get("status") == "Running"
            and bool(seen) and inst.get("last_used_at") == seen)


def check(module: reconcile.Module, client: incus.IncusClient) -> dict[str, Any]:
    p = module.params
    specs = p["instances"]
    current = client.instances(state=False)
    problems, pending = {}, []
    now = datetime.now(UTC)
    seen = read_record(p["record"]) if p["record"] else {}

    def key(spec: Mapping[str, Any]) -> str:
        return f"{p['remote']}:{spec['project']}/{spec['name']}"

    for spec in specs:
        inst = current.get((spec["project"], spec["name"]))
        if not spec.get("declared", True) or inst is None or inst.get("status") != "Running":
            problems[spec["host"]] = fix_line(spec, inst)
        elif not (started_long_ago(inst, now, p["timeout"])
                  or booted_since(inst, seen.get(key(spec)))):
            pending.append(spec)
    booting = [spec["host"] for spec in pending]
    deadline = time.monotonic() + p["timeout"]
    probes, why = 0, {}
    while pending:
        wait = max(1, int(deadline - time.monotonic()))
        with ThreadPoolExecutor(max_workers=max(1, min(p["parallel"], len(pending)))) as pool:
            answers = list(pool.map(lambda s, w=wait: probe(client, s["name"], s["project"], w),
                                    pending))
        probes += len(pending)
        why.update({s["host"]: a[1] for s, a in zip(pending, answers, strict=True)})
        pending = [s for s, a in zip(pending, answers, strict=True) if not a[0]]
        if pending and time.monotonic() >= deadline:
            break
        if pending:
            time.sleep(0.5)
    if pending:
        current = client.instances(state=False)
        for spec in pending:
            problems[spec["host"]] = fix_line(spec, current.get((spec["project"], spec["name"])),
                                              why.get(spec["host"], ""))
    ready = [s["host"] for s in specs if s["host"] not in problems]
    if p["record"]:
        started = {key(s): (current.get((s["project"], s["name"])) or {}).get("last_used_at")
                   for s in specs if s["host"] in ready}
        kept = {**seen, **{k: v for k, v in started.items() if v}}
        if kept != seen:
            write_record(p["record"], kept)
    return {"changed": False, "problems": problems, "ready": ready, "probes": probes,
            "booting": booting}


ARGUMENT_SPEC = dict(
    instances=dict(type="list", elements="dict", default=[], options=dict(
        host=dict(type="str", required=True),
        name=dict(type="str", required=True),
        project=dict(type="str", required=True),
        declared=dict(type="bool", default=True),
    )),
    **reconcile.REMOTE_OPTION,
    timeout=dict(type="int", default=120),
    parallel=dict(type="int", default=incus.DEFAULT_PARALLEL),
    record=dict(type="str", default=""),
)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_check(ARGUMENT_SPEC, "incus_ready", check, module, client)


if __name__ == "__main__":
    main()
