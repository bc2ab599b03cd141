# SPDX-License-Identifier: AGPL-3.0-or-later
"""Filters that compute the Incus objects infra.yml asks for (ADR-055).

The rules live in plugin_utils/desired_state.py (unit-tested without Ansible); each filter
only hands over the play's variables and turns a bad record into one clear error line.

  anklume.incus.desired_networks   domains, nat, ipv6_address, extra_config -> bridges
  anklume.incus.desired_projects   domains, config, storage_pool -> projects
  anklume.incus.desired_profiles   domains -> extra profiles
  anklume.incus.profile_refs       domains -> ["project/profile", ...]
  anklume.incus.instance_refs      domains -> ["project/machine", ...] (every declared machine)
  anklume.incus.machine_vars       hosts, hostvars -> each host's instance_* variables
  anklume.incus.desired_instances  hosts, hostvars, domains, image, admin socket -> instances
  anklume.incus.gpu_machines       hosts, hostvars, domains -> name, project, type (gpu asked)
  anklume.incus.placements         hosts, hostvars, domains -> name, project, target (member)
  anklume.incus.owned_names        domains -> bridges, projects, profiles (ownership check)
  anklume.incus.host_instance_refs hosts, hostvars, domains -> ["project/instance", ...]
  anklume.incus.provision_targets  hosts, hostvars, domains -> host, name, project, declared
  anklume.incus.snapshot_targets   hosts, hostvars, domains -> name, project (sorted, unique)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds


def _clear_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A record the rules cannot use fails the task with the rules' one-line message."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ds.DesiredStateError as exc:
            raise AnsibleFilterError(str(exc)) from None
    return wrapper


def desired_instances(hosts: Iterable[str], hostvars: Mapping[str, Any],
                      domains: Mapping[str, Any], image: str, admin_socket: Any = False,
                      admin_domain: str = "", socket_host_path: str = "",
                      socket_path: str = "", gpu: Mapping[str, str] | None = None,
                      ) -> list[dict[str, Any]]:
    device = ds.admin_socket_device(socket_host_path, socket_path)
    return ds.instances(hosts, hostvars, domains, image,
                        admin_domain if ds.as_bool(admin_socket) else "", device, gpu)


def snapshot_targets(hosts: Iterable[str], hostvars: Mapping[str, Any],
                     domains: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "project": t["project"]}
            for t in ds.instance_targets(sorted(set(hosts)), hostvars, domains)]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        rules: dict[str, Callable[..., Any]] = {
            "desired_networks": ds.networks,
            "desired_projects": ds.projects,
            "desired_profiles": ds.profiles,
            "profile_refs": ds.profile_refs,
            "instance_refs": ds.instance_refs,
            "machine_vars": ds.machine_vars,
            "desired_instances": desired_instances,
            "owned_names": ds.owned_names,
            "gpu_machines": ds.gpu_machines,
            "placements": ds.placements,
            "host_instance_refs": ds.host_instance_refs,
            "provision_targets": ds.instance_targets,
            "snapshot_targets": snapshot_targets,
        }
        return {name: _clear_errors(fn) for name, fn in rules.items()}
