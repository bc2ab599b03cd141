"""A domain's way out (ADR-093): checks across domains, gateway NICs, rendered records.

`egress:` is read by anklume/egress_check.py. Here: a machine's egress needs a static
address and cannot widen its domain's; `via: <machine>` puts that machine on the domain's
bridge at ``.252`` (a NIC without the anti-spoofing filters: it forwards the domain's
packets), gives it the `egress_gateway` role, and reserves ``.252`` in the domain. The
host's rules (plugins/plugin_utils/egress.py) and the bridge's DHCP (routes, DNS) follow
from the records written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anklume import firewall
from anklume.model import (
    EGRESS_LIST,
    EGRESS_NONE,
    EGRESS_OPEN,
    Domain,
    Egress,
    EgressRule,
    Infra,
    Machine,
    network_name,
)
from anklume.yamlload import Path

Report = Callable[[Path, str, str], None]

# Host octet of the gateway's address on the bridge of a domain that leaves through it.
OCTET = 252
ROLE = "egress_gateway"
DEVICE_PREFIX = "via-"


def address(infra: Infra, domain: Domain) -> str:
    return f"{infra.base_subnet}.{domain.subnet_id}.{OCTET}"


def complete(infra: Infra, err: Report) -> None:
    """Check egress and via across the file; give each gateway its NICs and role."""
    machines = {m.name: (d, m) for d in infra.domains for m in d.machines}
    for d in infra.domains:
        path: Path = ("domains", d.name)
        if not infra.isolation and (d.via or d.egress.mode != EGRESS_OPEN or any(
                m.egress for m in d.machines)):
            err((*path, "via" if d.via else "egress"), "the way out is enforced by the "
                "isolation rules, and global.isolation is false",
                "set global.isolation: true, or remove egress/via")
            continue
        for m in d.machines:
            if m.egress is not None:
                _narrow(d, m, err)
        if d.via:
            _via(infra, d, machines, err)
    _cycles(infra, err)


def _narrow(d: Domain, m: Machine, err: Report) -> None:
    path: Path = ("domains", d.name, "machines", m.name, "egress")
    if not m.ip:
        err(path, f"machine {m.name} has no static ip", "give it an ip: its egress is "
            "matched by its address")
    elif d.egress.mode == EGRESS_NONE and m.egress and m.egress.mode == EGRESS_LIST:
        err(path, f"domain {d.name} has egress: none; a machine cannot widen it",
            "remove the machine's egress, or give the domain a list")
    elif d.via:
        err(path, f"domain {d.name} leaves through {d.via}: the gateway decides",
            "remove the machine's egress, or filter in the gateway")


def _via(infra: Infra, d: Domain, machines: dict[str, tuple[Domain, Machine]],
         err: Report) -> None:
    path: Path = ("domains", d.name, "via")
    if d.via not in machines:
        err(path, f"'{d.via}' is not a machine of this file",
            "name the machine (in another domain) that carries the domain's traffic")
        return
    home, gw = machines[d.via]
    if home.name == d.name:
        err(path, f"{d.via} is a machine of {d.name} itself",
            "declare the gateway in another domain (its own way out is the domain's)")
        return
    if gw.name == firewall.NAME:
        err(path, f"{firewall.NAME} routes between domains, not out",
            "declare a gateway machine of its own")
        return
    if d.egress.mode != EGRESS_OPEN:
        err((*path[:-1], "egress"), f"domain {d.name} leaves through {d.via}: its egress is "
            "the gateway's", "remove egress here; filter in the gateway's domain")
        return
    lo, hi = infra.dhcp_range
    if hi >= OCTET:
        err(("global", "dhcp_range"), f"the DHCP range {lo}-{hi} reaches .{OCTET}, the "
            f"gateway's address in domain {d.name} (via)", f"end the range below {OCTET}")
    if d.disposables is not None and infra.disposable_range[1] >= OCTET:
        err(("global", "disposable_range"), f"the disposable range reaches .{OCTET}, the "
            f"gateway's address in domain {d.name} (via)", f"end the range below {OCTET}")
    for m in d.machines:
        if m.ip and m.ip.rsplit(".", 1)[-1] == str(OCTET):
            err(("domains", d.name, "machines", m.name, "ip"), f"{m.ip} is reserved for the "
                f"gateway {d.via} (via)", f"use another host number than {OCTET}")
    if d.subnet_id < 0:
        return
    gw.devices[f"{DEVICE_PREFIX}{d.name}"] = {
        "type": "nic", "network": network_name(d.name), "name": network_name(d.name),
        "ipv4.address": address(infra, d), **firewall.NIC_FILTERS_OFF}
    if ROLE not in gw.roles:
        gw.roles.insert(0, ROLE)


def _cycles(infra: Infra, err: Report) -> None:
    """A chain of gateways must end at a domain with a way out of its own."""
    home = {m.name: d.name for d in infra.domains for m in d.machines}
    via = {d.name: home[d.via] for d in infra.domains
           if d.via in home and home[d.via] != d.name}  # the others are reported already
    for start in via:
        seen, at = [start], via[start]
        while at in via:
            if at in seen:
                err(("domains", start, "via"), "the gateways form a loop: "
                    + " -> ".join([*seen, at]), "end the chain at a domain without via")
                return  # one line for one loop
            seen.append(at)
            at = via[at]


def _rules(rules: list[EgressRule]) -> list[dict[str, Any]]:
    return [{"to": r.to, "protocol": r.protocol, "ports": list(r.ports),
             "description": r.description} for r in rules]


def record(infra: Infra, d: Domain) -> dict[str, Any]:
    """``anklume_domains.<d>.egress`` (docs/generated-vars.md)."""
    return {"mode": d.egress.mode, "rules": _rules(d.egress.rules),
            "machines": {m.name: {"address": m.ip, "mode": m.egress.mode,
                                  "rules": _rules(m.egress.rules)}
                         for m in d.machines if m.egress is not None}}


def via_record(infra: Infra, d: Domain) -> dict[str, Any] | None:
    """``anklume_domains.<d>.via``: the gateway, its address here, the domains' range."""
    if not d.via:
        return None
    return {"machine": d.via, "address": address(infra, d),
            "routes": f"{infra.base_subnet}.0.0/16"}


def gateway_record(infra: Infra, m: Machine) -> dict[str, Any] | None:
    """``anklume_gateway`` of a gateway machine: its address on each domain it carries."""
    carried = [d for d in infra.domains if d.via == m.name and d.subnet_id >= 0]
    if not carried:
        return None
    return {"interfaces": {network_name(d.name): f"{address(infra, d)}/24" for d in carried},
            "domains": [d.name for d in carried],
            "block": f"{infra.base_subnet}.0.0/16"}


def describe(egress: Egress | None) -> str:
    """One short phrase for the plan and `make graph`."""
    if egress is None or egress.mode == EGRESS_OPEN:
        return "open"
    if egress.mode == EGRESS_NONE:
        return "none"
    return ", ".join(_rule_text(r) for r in egress.rules) or "nothing listed"


def _rule_text(r: EgressRule) -> str:
    ports = ",".join(str(p) for p in r.ports)
    what = r.protocol if r.protocol != "any" or ports else ""
    return r.to + (f" {what}" if what else "") + (f"/{ports}" if ports else "")
