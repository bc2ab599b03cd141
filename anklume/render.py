"""Render the normalised infrastructure into the bodies of the generated files.

Variable names follow docs/generated-vars.md (the contract with the roles).
"""

from __future__ import annotations

from typing import Any

import yaml

from anklume import colors, egress, file_policies, firewall
from anklume.model import (
    GPU_GROUP,
    PROVISION_DUE_GROUP,
    PROVISION_GROUP,
    VM_GROUP,
    Domain,
    Infra,
    Machine,
    Policy,
    network_name,
    uses_gpu,
)

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(data: dict[str, Any]) -> str:
    """Deterministic block-style YAML."""
    text: str = yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                          allow_unicode=True, width=4096)
    return text


def _domain_record(infra: Infra, d: Domain) -> dict[str, Any]:
    record = _domain_base(infra, d)
    fw = firewall.record(infra)
    if fw:  # firewall_mode vm: the route to the other domains through sys-firewall (ADR-066)
        record["firewall"] = {"address": fw["addresses"][d.name], "routes": fw["routes"]}
    return record


def _domain_base(infra: Infra, d: Domain) -> dict[str, Any]:
    return {
        "description": d.description,
        "subnet_id": d.subnet_id,
        "project": d.name,
        "network": network_name(d.name),
        "subnet": infra.subnet(d),
        "gateway": infra.gateway(d),
        "dhcp_range": infra.dhcp(d),
        "ephemeral": d.ephemeral,
        "nat": d.nat,
        "limits": dict(d.limits),
        "profiles": {
            p.name: {"description": p.description, "config": dict(p.config),
                     "devices": {k: dict(v) for k, v in p.devices.items()}}
            for p in d.profiles.values()
        },
        "machines": [m.name for m in d.machines],
        "disposables": _disposables(infra, d),
        "color": d.color,
        "color_hex": colors.hex_of(d.color),
        "egress": egress.record(infra, d),
        "via": egress.via_record(infra, d),
    }


def _disposables(infra: Infra, d: Domain) -> dict[str, Any] | None:
    """What `make disp` reads (ADR-084); None where the domain refuses disposables."""
    if d.disposables is None:
        return None
    lo, hi = infra.disposable_range
    return {"preload": d.disposables.preload,
            "image": d.disposables.image or infra.default_os_image,
            "ttl": d.disposables.ttl, "range": f"{lo}-{hi}"}


def _policy(p: Policy) -> dict[str, Any]:
    return {
        "from": p.source, "from_kind": p.source_kind, "from_cidr": p.source_cidr,
        "to": p.target, "to_kind": p.target_kind, "to_cidr": p.target_cidr,
        "protocol": p.protocol, "ports": list(p.ports), "description": p.description,
    }


def group_all(infra: Infra) -> dict[str, Any]:
    return {
        "anklume_project_name": infra.project_name,
        "anklume_default_os_image": infra.default_os_image,
        "anklume_gpu_policy": infra.gpu_policy,
        "anklume_firewall_mode": infra.firewall_mode,
        "anklume_incus_remote": infra.incus_remote,
        "anklume_isolation": infra.isolation,
        "anklume_snapshot_before_apply": infra.snapshot_before_apply,
        "anklume_snapshot_before_apply_keep": infra.snapshot_before_apply_keep,
        "anklume_admin_domain": infra.admin_domain,
        "anklume_firewall": firewall.record(infra),
        "anklume_domains": {d.name: _domain_record(infra, d) for d in infra.domains},
        "anklume_network_policies": [_policy(p) for p in infra.policies],
        "anklume_file_policies": [file_policies.render(p) for p in infra.file_policies],
        "anklume_clipboard_policies": [file_policies.render(p)
                                       for p in infra.clipboard_policies],
        "anklume_domain_templates": {t: list(ds) for t, ds in infra.domain_templates.items()},
    }


def group_domain(infra: Infra, d: Domain) -> dict[str, Any]:
    return {
        "anklume_domain_ephemeral": d.ephemeral,
        "ansible_incus_project": d.name,
        "ansible_incus_remote": infra.incus_remote,
    }


def inventory(d: Domain) -> dict[str, Any]:
    """The domain's group; its machines that declare roles also join PROVISION_GROUP (kept,
    empty, where none does: the provision check names it, and a missing group warns), and
    PROVISION_DUE_GROUP is kept empty for the provision play; those that ask for a GPU join
    GPU_GROUP, its VMs VM_GROUP (written only where there are some)."""
    provisioned: dict[str, dict[str, Any]] = {m.name: {} for m in d.machines if m.roles}
    children: dict[str, Any] = {d.name: {"hosts": {m.name: {} for m in d.machines}},
                                PROVISION_GROUP: {"hosts": provisioned} if provisioned else {},
                                PROVISION_DUE_GROUP: {}}
    for group, members in ((GPU_GROUP, [m for m in d.machines if uses_gpu(m, d)]),
                           (VM_GROUP, [m for m in d.machines if m.type == "vm"])):
        if members:
            children[group] = {"hosts": {m.name: {} for m in members}}
    return {"all": {"children": children}}


def template_inventory(name: str, domains: list[str]) -> dict[str, Any]:
    """A template is the Ansible group of its domains: LIMIT=student, DOMAIN=student."""
    return {"all": {"children": {name: {"children": {d: {} for d in domains}}}}}


def host(infra: Infra, d: Domain, m: Machine) -> dict[str, Any]:
    out = _host(d, m)
    gateway = egress.gateway_record(infra, m)
    if gateway:  # the domains that leave through it (via, ADR-093)
        out["anklume_gateway"] = gateway
    return out


def _host(d: Domain, m: Machine) -> dict[str, Any]:
    return {
        "instance_name": m.name,
        "instance_domain": d.name,
        "instance_description": m.description,
        "instance_type": m.type,
        "instance_ip": m.ip,
        "instance_os_image": m.os_image,
        "instance_profiles": list(m.profiles),
        "instance_config": dict(m.config),
        "instance_devices": {k: dict(v) for k, v in m.devices.items()},
        "instance_gpu": uses_gpu(m, d),
        "instance_gui": m.gui,
        "instance_audio": m.audio,
        "instance_microphone": m.microphone,
        "instance_roles": list(m.roles),
        "instance_ephemeral": m.ephemeral,
        "instance_snapshots_schedule": m.snapshots_schedule,
        "instance_snapshots_expiry": m.snapshots_expiry,
        "instance_allow_spoofing": m.allow_spoofing,
        "instance_target": m.target,
    }


def render(infra: Infra) -> dict[str, str]:
    """Relative path -> managed body, for every file the infrastructure needs."""
    out = {"group_vars/all.yml": dump(group_all(infra))}
    for d in infra.domains:
        out[f"inventory/{d.name}.yml"] = dump(inventory(d))
        out[f"group_vars/{d.name}.yml"] = dump(group_domain(infra, d))
        for m in d.machines:
            out[f"host_vars/{m.name}.yml"] = dump(host(infra, d, m))
    for name, domains in infra.domain_templates.items():
        out[f"inventory/{name}.yml"] = dump(template_inventory(name, domains))
    return out
