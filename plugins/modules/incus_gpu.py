#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Before any change: can the Incus host give the declared GPU instances a GPU, and how?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_gpu
short_description: Check that the Incus host has an NVIDIA GPU for the instances that ask for one
description:
  - Reads the host's GPUs from C(/1.0/resources) (one call). When an instance asks for a GPU
    and the host has no NVIDIA card with its driver loaded, fails with one line naming the
    instances and what Incus reports.
  - Picks how a container gets the driver's user space (ADR-064). C(runtime) sets
    C(nvidia.runtime) (the NVIDIA container toolkit binds the host's libraries); C(mount)
    mounts a host directory holding C(bin/) and C(lib64/) of the driver read-only at
    C(/usr/local/nvidia). C(auto) picks C(runtime) when C(nvidia-container-cli) is on the
    Incus host, else C(mount) when O(driver_dir) exists there; it can look only when Incus
    runs on this machine (O(incus_is_local)).
  - With O(policy=exclusive), warns when a running instance that infra.yml does not declare
    already holds a GPU.
  - Changes nothing; returns a C(plan) entry of action C(info) so C(make plan) says which
    GPU and which user-space method.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - anklume.incus.check
  - anklume.incus.scope
options:
  instances: {description: The instances in scope that ask for a GPU.}
  declared: {description: "Every instance infra.yml declares, as C(project/name).", type: list, elements: str, default: []}
  policy: {description: "C(global.gpu_policy).", type: str, choices: [exclusive, shared], default: exclusive}
  userspace: {description: How a container gets the driver's user space., type: str, choices: [auto, runtime, mount, none], default: auto}
  driver_dir: {description: "Host directory with the driver's C(bin/) and C(lib64/) (mount method).", type: str, default: /usr/local/nvidia}
  incus_is_local: {description: Incus runs on this machine (its files can be inspected)., type: bool, default: true}
author: AnKLuMe contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the GPU before any change
  anklume.incus.incus_gpu:
    instances: [{name: ai-llm, project: ai, type: lxc}]
    declared: [ai/ai-llm]
  register: gpu
"""

RETURN = r"""
cards: {description: "NVIDIA cards of the host (model, driver_version, pci).", type: list, elements: dict, returned: always}
userspace: {description: "C(runtime), C(mount) or C(none) (empty when no instance asks for a GPU).", type: str, returned: always}
driver_dir: {description: Host directory mounted by the C(mount) method., type: str, returned: always}
holders: {description: "Running undeclared instances holding a GPU, as C(project/name).", type: list, elements: str, returned: always}
plan: {description: One C(info) entry naming the GPU and the user-space method., type: list, elements: dict, returned: always}
"""

import os
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ansible_collections.anklume.incus.plugins.module_utils import reconcile

if TYPE_CHECKING:
    from ansible_collections.anklume.incus.plugins.module_utils.incus_client import IncusClient

NVIDIA_VENDOR = "10de"


def nvidia_cards(resources: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The NVIDIA cards of ``/1.0/resources`` whose driver is loaded."""
    cards: list[dict[str, Any]] = []
    for card in (resources or {}).get("gpu", {}).get("cards") or []:
        if card.get("vendor_id") != NVIDIA_VENDOR and card.get("driver") != "nvidia":
            continue
        nv = card.get("nvidia") or {}
        cards.append({"model": nv.get("model") or card.get("product") or "NVIDIA GPU",
                      "driver": card.get("driver") or "",
                      "driver_version": card.get("driver_version") or "",
                      "pci": card.get("pci_address") or ""})
    return cards


def seen_cards(resources: Mapping[str, Any] | None) -> list[str]:
    """Every card Incus lists, for the error line: 'vendor product (driver)'."""
    seen: list[str] = []
    for card in (resources or {}).get("gpu", {}).get("cards") or []:
        name = " ".join(x for x in (card.get("vendor"), card.get("product")) if x) or "card"
        seen.append(f"{name} (driver {card.get('driver') or 'none'})")
    return seen


def no_gpu_line(machines: Iterable[Mapping[str, Any]],
                resources: Mapping[str, Any] | None) -> str:
    names = ", ".join(f"{m['name']} (project {m['project']})" for m in machines)
    seen = seen_cards(resources)
    cards = "cards listed: " + "; ".join(seen) if seen else "it lists no GPU at all"
    return (f"GPU requested by {names}, but the Incus host has no NVIDIA GPU with its driver "
            f"loaded (/1.0/resources: {cards}): set gpu: false and drop the gpu device or the "
            "nvidia-compute profile, or run on a host with an NVIDIA GPU and its driver")


def pick_userspace(wanted: str, driver_dir: str, is_local: bool,
                   which: Callable[[str], str | None] = shutil.which,
                   isdir: Callable[[str], bool] = os.path.isdir) -> tuple[str, str]:
    """(method, problem): the user-space method for containers, or a one-line problem."""
    if wanted in ("runtime", "none"):
        return wanted, ""
    if wanted == "mount":
        if is_local and not isdir(os.path.join(driver_dir, "lib64")):
            return "", (f"gpu_userspace is mount but {driver_dir}/lib64 does not exist on the "
                        "Incus host: run scripts/gpu-userspace.sh there, or set "
                        "incus_gpu_driver_dir to the driver's directory")
        return "mount", ""
    if not is_local:
        return "", ("gpu_userspace is auto but Incus runs on another machine, whose files "
                    "cannot be inspected from here: set incus_gpu_userspace to runtime "
                    "(NVIDIA container toolkit there) or mount (driver directory there)")
    if which("nvidia-container-cli"):
        return "runtime", ""
    if isdir(os.path.join(driver_dir, "lib64")):
        return "mount", ""
    return "", ("no NVIDIA driver user space for containers on the Incus host: neither "
                f"nvidia-container-cli (NVIDIA container toolkit) nor {driver_dir}/lib64: "
                "install the toolkit, or run scripts/gpu-userspace.sh to gather the driver's "
                "files there")


def gpu_holders(instances: Mapping[tuple[str, str], Mapping[str, Any]],
                declared: Collection[str]) -> list[str]:
    """Running instances that infra.yml does not declare and that hold a GPU device."""
    out: list[str] = []
    for (project, name), inst in sorted(instances.items()):
        if f"{project}/{name}" in declared or inst.get("status") != "Running":
            continue
        devices = inst.get("expanded_devices") or inst.get("devices") or {}
        if any((d or {}).get("type") == "gpu" for d in devices.values()):
            out.append(f"{project}/{name}")
    return out


def describe(cards: Iterable[Mapping[str, Any]], method: str, driver_dir: str,
             machines: Sequence[Mapping[str, Any]]) -> str:
    models = ", ".join(f"{c['model']} (driver {c['driver_version'] or '?'})" for c in cards)
    how = {"runtime": "user space by nvidia.runtime (NVIDIA container toolkit)",
           "mount": f"user space mounted read-only from {driver_dir}",
           "none": "no user space added (the instance brings its own)"}[method]
    if all(m.get("type") == "vm" for m in machines):
        how = "PCI passthrough to the VM (its own driver)"
    names = ", ".join(m["name"] for m in machines)
    return f"{models}: {how}; for {names}"


def check(module: reconcile.Module, client: IncusClient) -> dict[str, Any]:
    p = module.params
    machines = p["instances"]
    result: dict[str, Any] = {"changed": False, "cards": [], "userspace": "",
                              "driver_dir": p["driver_dir"], "holders": [], "plan": []}
    if not machines:
        return result
    resources = client.get("/1.0/resources", what="reading the host's resources")
    cards = nvidia_cards(resources)
    if not cards:
        module.fail_json(msg=no_gpu_line(machines, resources))
    result["cards"] = cards
    method, problem = pick_userspace(p["userspace"], p["driver_dir"], p["incus_is_local"])
    if problem and any(m.get("type") != "vm" for m in machines):
        module.fail_json(msg=problem)
    result["userspace"] = method or "none"
    if p["policy"] == "exclusive":
        holders = gpu_holders(client.instances(state=False), set(p["declared"]))
        result["holders"] = holders
        for ref in holders:
            module.warn(f"instance {ref} is not in infra.yml but already holds a GPU while "
                        "gpu_policy is exclusive: stop it or remove its gpu device, or set "
                        "global.gpu_policy: shared")
    result["plan"] = [{"kind": "gpu", "name": "host", "action": "info",
                       "reason": describe(cards, result["userspace"], p["driver_dir"], machines)}]
    return result


ARGUMENT_SPEC = dict(
    **reconcile.SCOPE_OPTION,
    declared=dict(type="list", elements="str", default=[]),
    policy=dict(type="str", choices=["exclusive", "shared"], default="exclusive"),
    userspace=dict(type="str", choices=["auto", "runtime", "mount", "none"], default="auto"),
    driver_dir=dict(type="str", default="/usr/local/nvidia"),
    incus_is_local=dict(type="bool", default=True),
    **reconcile.REMOTE_OPTION,
)


def main(module: reconcile.Module | None = None, client: Any = None) -> None:
    reconcile.run_check(ARGUMENT_SPEC, "incus_gpu", check, module, client)


if __name__ == "__main__":
    main()
