"""The firewall instance of `global.firewall_mode: vm` (roadmap Phase 11, ADR-066).

With ``vm``, the machine ``sys-firewall`` of the admin domain (declared, or added here) holds
one NIC on every domain bridge at the host octet ``.253`` of that domain's subnet. The
bridges' DHCP hands every domain a route to the other domains through that address, and the
host drops every direct bridge-to-bridge forward: the firewall is the only path. This module
adds or completes that machine, reserves ``.253`` in every domain, and describes the result
for the roles (``anklume_firewall``, docs/generated-vars.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from anklume.model import Domain, Infra, Machine, machine_ephemeral, network_name
from anklume.yamlload import Path

NAME = "sys-firewall"
# Host octet of the firewall's address on every domain bridge (the host keeps .254).
OCTET = 253
# The provisioning role that configures routing and filtering inside it.
ROLE = "sys_firewall"
NIC_FILTERS_OFF = {"security.mac_filtering": "false", "security.ipv4_filtering": "false",
                   "security.ipv6_filtering": "false"}
# Incus restarts it after an unexpected exit and starts it with the daemon.
CONFIG = {"boot.autorestart": "true", "boot.autostart": "true",
          "boot.autostart.priority": "100"}

Report = Callable[[Path, str, str], None]


def address(infra: Infra, domain: Domain) -> str:
    """The firewall's address on ``domain``'s bridge."""
    return f"{infra.base_subnet}.{domain.subnet_id}.{OCTET}"


def interface(domain: Domain, admin: str) -> str:
    """The firewall's interface on ``domain``'s bridge: eth0 on the admin bridge (the image's
    own DHCP brings it up before provisioning), the bridge's name everywhere else."""
    return "eth0" if domain.name == admin else network_name(domain.name)


def _declared_type(raw_domains: Any, admin: str) -> Any:
    try:
        return raw_domains[admin]["machines"][NAME].get("type")
    except (KeyError, TypeError, AttributeError):
        return None


def _reserved(infra: Infra, err: Report) -> None:
    """``.253`` is the firewall's in every domain: no other machine, no DHCP lease there."""
    lo, hi = infra.dhcp_range
    if hi >= OCTET:
        err(("global", "dhcp_range"),
            f"the DHCP range {lo}-{hi} reaches .{OCTET}, the firewall's address in every domain "
            "(firewall_mode: vm)", f"end the range below {OCTET}, e.g. \"100-199\"")
    for d in infra.domains:
        for m in d.machines:
            if m.name != NAME and m.ip and m.ip.rsplit(".", 1)[-1] == str(OCTET):
                err(("domains", d.name, "machines", m.name, "ip"),
                    f"{m.ip} is reserved for {NAME} on domain {d.name} (firewall_mode: vm)",
                    f"use another host number than {OCTET}")


def complete(infra: Infra, raw_domains: Any, err: Report, warn: Report) -> None:
    """With firewall_mode vm: add or complete sys-firewall and reserve its addresses."""
    if infra.firewall_mode != "vm":
        return
    admin = infra.admin_domain
    if not admin:
        err(("global", "firewall_mode"), "firewall_mode vm needs an admin domain to hold "
            f"{NAME}", "name one with global.admin_domain, or use firewall_mode: host")
        return
    domains = {d.name: d for d in infra.domains}
    home = domains[admin]
    found = [(d, m) for d in infra.domains for m in d.machines if m.name == NAME]
    for d, _m in found:
        if d.name != admin:
            err(("domains", d.name, "machines", NAME), f"{NAME} is declared in domain {d.name}",
                f"declare it in the admin domain {admin}, or leave it out (it is added there)")
            return
    if any(d.subnet_id < 0 for d in infra.domains):
        return  # subnet errors are reported already
    _reserved(infra, err)
    if found:
        fw = found[0][1]
        declared = _declared_type(raw_domains, admin)
        if declared is None:
            fw.type = "vm"
        elif declared == "lxc":
            warn(("domains", admin, "machines", NAME, "type"),
                 f"{NAME} is type lxc: its kernel is the host's, so a kernel flaw reached "
                 "through it is the host's (docs/network-isolation.md)",
                 "use type: vm where the host runs VMs")
        if fw.ip and fw.ip != address(infra, home):
            err(("domains", admin, "machines", NAME, "ip"),
                f"{fw.ip} is not {address(infra, home)}, the firewall's fixed address",
                "remove ip: (it is set) or write that address")
    else:
        fw = Machine(name=NAME, domain=admin, type="vm", os_image=infra.default_os_image,
                     description="AnKLuMe firewall: the only path between domains",
                     ephemeral=machine_ephemeral(home))
        home.machines.append(fw)
    fw.ip = address(infra, home)
    fw.allow_spoofing = True  # it forwards the packets of every domain
    for key, value in CONFIG.items():
        fw.config.setdefault(key, value)
    for d in infra.domains:
        if d.name != admin:
            fw.devices[f"fw-{d.name}"] = {
                "type": "nic", "network": network_name(d.name),
                "name": interface(d, admin), "ipv4.address": address(infra, d),
                **NIC_FILTERS_OFF}
    if ROLE not in fw.roles:
        fw.roles.insert(0, ROLE)


def record(infra: Infra) -> dict[str, Any] | None:
    """``anklume_firewall``: where the firewall is and its address and interface per domain."""
    if infra.firewall_mode != "vm" or not infra.admin_domain:
        return None
    domains: Mapping[str, Domain] = {d.name: d for d in infra.domains}
    admin = infra.admin_domain
    return {
        "name": NAME,
        "domain": admin,
        "project": admin,
        "octet": OCTET,
        "gateway": f"{infra.base_subnet}.{domains[admin].subnet_id}.254",
        "routes": f"{infra.base_subnet}.0.0/16",
        "addresses": {n: address(infra, d) for n, d in domains.items()},
        "interfaces": {n: interface(d, admin) for n, d in domains.items()},
    }
