#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Before any change: can this Incus run the virtual machines infra.yml declares?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_vm_support
short_description: Check that Incus can run the declared virtual machines, before any change
description:
  - Reads the server's C(/1.0) once. Its C(environment.driver) lists the instance drivers
    that work (C(lxc | qemu) where VMs run, C(lxc) alone where they cannot).
  - When a VM is declared and C(qemu) is missing, Incus's own reason is read from a
    creation request that the server refuses before it writes anything (the driver status
    is fixed at daemon start), and every VM gets one line naming it, the driver list and
    that reason (ADR-064).
  - Nothing is read beyond C(/1.0) when no VM is declared, or when C(qemu) is listed.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.check
  - anklume.incus.scope
options:
  instances: {description: The declared instances in scope; only those of type V(vm) matter.}
  fail:
    description: Fail the task when a VM cannot run (V(false) only reports, for a plan that goes on).
    type: bool
    default: true
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop before any change when a declared VM cannot run here
  anklume.incus.incus_vm_support:
    instances: [{name: sandbox-vm, project: sandbox, type: vm}]
"""

RETURN = r"""
drivers: {description: "The server's instance drivers (C(environment.driver) split).", type: list, elements: str, returned: always}
vm_supported: {description: Whether C(qemu) is among them., type: bool, returned: always}
reason: {description: "Incus's reason when VMs cannot run and one is declared, else empty.", type: str, returned: always}
problems: {description: One line per declared VM that cannot run., type: list, elements: str, returned: always}
plan:
  description: One C(unsupported) entry per VM that cannot run (ADR-056).
  type: list
  elements: dict
  returned: always
incus_calls: {description: Incus REST calls made., type: int, returned: always}
"""

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import reconcile

VM_TYPES = ("vm", "virtual-machine")
# Never created where VMs cannot run; deleted at once should a server accept it all the same.
PROBE = "anklume-vm-probe"


def drivers_of(server: Mapping[str, Any] | None) -> list[str]:
    """The working instance drivers of a ``GET /1.0`` answer: ``"lxc | qemu"`` -> [lxc, qemu]."""
    text = ((server or {}).get("environment") or {}).get("driver") or ""
    return [d.strip() for d in text.split("|") if d.strip()]


def declared_vms(instances: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [i for i in instances if (i.get("type") or "lxc") in VM_TYPES]


def problem_line(vm: Mapping[str, Any], remote: str, drivers: list[str], reason: str) -> str:
    """The one line a VM that cannot run gets: the machine, Incus's drivers and reason, the fix."""
    return (f"machine {vm['name']} (project {vm.get('project') or 'default'}) is type vm, but "
            f"Incus on {remote} cannot run virtual machines: its instance drivers are "
            f"[{', '.join(drivers) or 'none'}] and it reports: {reason}; fix: run this infra "
            "on a host with KVM and vhost_vsock (docs/vm-support.md), or declare the machine "
            "type: lxc")


def probe_request() -> dict[str, Any]:
    """A VM creation that a server without the qemu driver refuses before writing anything."""
    return {"name": PROBE, "type": "virtual-machine", "source": {"type": "none"},
            "description": "anklume VM capability probe (deleted at once)"}


def refusal_reason(client: incus.IncusClient) -> str:
    """Incus's own words on why it cannot create a VM (it logs them at start only)."""
    try:
        op = client.start_operation("/1.0/instances", "POST", probe_request(),
                                    what="asking Incus why it cannot run VMs")
        client.wait_operation(op, what="creating a VM")
    except incus.IncusError as exc:
        text = str(exc)
        return text.split("Failed creating instance record: ", 1)[-1]
    # Accepted after all (the driver came up since the daemon started): remove it.
    client.query(f"/1.0/instances/{PROBE}", "DELETE", what="deleting the VM probe")
    return ("the qemu driver is not listed by the running daemon (a VM probe was accepted: "
            "restart incusd so it lists qemu)")


def check(client: incus.IncusClient, instances: Iterable[Mapping[str, Any]],
          remote: str) -> dict[str, Any]:
    """The module's result (without ``changed``)."""
    server = client.get("/1.0", what="reading the server's environment")
    drivers = drivers_of(server)
    vms = declared_vms(instances)
    supported = "qemu" in drivers
    result: dict[str, Any] = {"drivers": drivers, "vm_supported": supported, "reason": "",
                              "problems": [], "plan": []}
    if not vms or supported:
        return result
    reason = refusal_reason(client)
    result["reason"] = reason
    for vm in vms:
        line = problem_line(vm, remote, drivers, reason)
        entry = incus.plan_entry("instance", vm["name"], "unsupported", project=vm.get("project"))
        entry["reason"] = line
        result["problems"].append(line)
        result["plan"].append(entry)
    return result


ARGUMENT_SPEC = dict(
    **reconcile.SCOPE_OPTION,
    fail=dict(type="bool", default=True),
    **reconcile.REMOTE_OPTION,
)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    module = reconcile.ansible_module(module, ARGUMENT_SPEC)
    p = module.params
    client = client or incus.IncusClient(p["remote"])
    try:
        result = check(client, p["instances"], p["remote"])
    except incus.IncusError as exc:
        module.fail_json(msg=f"incus_vm_support: {exc}", incus_calls=client.calls)
    if result["problems"] and p["fail"]:
        module.fail_json(msg="\n".join(result["problems"]), incus_calls=client.calls, **result)
    module.exit_json(changed=False, incus_calls=client.calls, **result)


if __name__ == "__main__":
    main()
