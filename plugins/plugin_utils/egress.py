# SPDX-License-Identifier: AGPL-3.0-or-later
"""Each domain's way out (ADR-093): the forward rules and chains of `egress` and `via`.

A pure part of the isolation ruleset (plugins/plugin_utils/ruleset.py), no Ansible import.
``egress`` of a domain record (docs/generated-vars.md) is ``{mode, rules, machines}``:
mode ``open`` adds nothing, ``none`` drops all the bridge sends to a non-domain interface,
``list`` accepts the listed destinations (IPv4 only) and drops the rest; a machine's own
``egress`` narrows it in a chain that returns on a match. ``via`` drops the whole direct
way out: the domain leaves through its gateway's interface on the same bridge.
DNS names are resolved here, when the rules are rendered; the rule's comment says what a
name gave, so the plan's diff of the ruleset shows it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.plugin_utils.desired_state import (
    DesiredStateError,
)

Resolver = Callable[[str], list[str]]
MODES = ("open", "none", "list")
PROTOCOLS = ("tcp", "udp", "icmp", "any")


@functools.lru_cache(maxsize=256)  # one answer per name for the ruleset and its summary
def resolve(name: str) -> list[str]:
    """The IPv4 addresses of ``name`` through this controller's resolver, sorted."""
    try:
        infos = socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DesiredStateError(
            f"egress: {name} does not resolve on this controller ({exc}): correct the name, "
            "or write its address (docs/network-isolation.md, \"The way out\")") from None
    return sorted({str(info[4][0]) for info in infos}, key=ipaddress.IPv4Address)


def reach(rules: Any, resolver: Resolver) -> str:
    """A list's destinations in a few words: ``198.51.100.10 tcp/443, a.example udp (addr)``."""
    out = []
    for rule in rules or []:
        to = str(rule.get("to"))
        ports = ",".join(str(p) for p in rule.get("ports") or [])
        protocol = rule.get("protocol", "any")
        text = to + (f" {protocol}" if protocol != "any" or ports else "")
        text += f"/{ports}" if ports else ""
        if not _is_address(to):
            text += f" ({' '.join(resolver(to))})"
        out.append(text)
    return ", ".join(out) or "nothing"


def summary(domains: Mapping[str, Any], resolver: Resolver = resolve) -> list[str]:
    """``name: what it may reach outside``, per domain and per narrowed machine; nothing
    when every domain is open with no gateway (the plan stays as it was)."""
    lines: list[str] = []
    for name, record in domains.items():
        egress = _egress(name, record)
        via = record.get("via")
        if via:
            lines.append(f"{name}: via {via['machine']} (DNS too; nothing when it is down)")
        elif egress["mode"] == "list":
            lines.append(f"{name}: {reach(egress.get('rules'), resolver)}")
        else:
            lines.append(f"{name}: {egress['mode']}")
        for machine, narrow in (egress.get("machines") or {}).items():
            narrowed = ("none" if narrow.get("mode") == "none"
                        else reach(narrow.get("rules"), resolver))
            lines.append(f"{machine}: {narrowed}")
    if all(line.endswith(": open") for line in lines):
        return []
    return lines


def _is_address(to: str) -> bool:
    try:
        ipaddress.IPv4Network(to)
    except ValueError:
        return False
    return True


def _safe(text: str) -> str:
    return text.replace('"', "'").replace("\\", "'").replace("\n", " ")[:100]


def l4_match(protocol: str, ports: str, icmp: str = "meta l4proto icmp") -> list[str]:
    """The protocol and ports part of a rule, shared with the network policies' rules (ICMP
    as ICMP asks: a list is IPv4, a policy also IPv6); nothing for `any` without ports."""
    if protocol in ("tcp", "udp"):
        return [f"{protocol} dport {{ {ports} }}" if ports else f"meta l4proto {protocol}"]
    if protocol == "icmp":
        return [icmp]
    return [f"meta l4proto {{ tcp, udp }} th dport {{ {ports} }}"] if ports else []


def rule_line(rule: Mapping[str, Any], verdict: str, resolver: Resolver) -> str:
    """One allowed destination: addresses, protocol and ports, the verdict, a comment."""
    to = str(rule.get("to", ""))
    protocol = rule.get("protocol", "any")
    ports = ", ".join(str(p) for p in rule.get("ports") or [])
    if protocol not in PROTOCOLS or (ports and protocol == "icmp"):
        raise DesiredStateError(f"egress rule to {to}: protocol {protocol} with ports "
                                f"[{ports}] is not valid: run `make sync`")
    addresses = [to] if _is_address(to) else resolver(to)
    shown = to if _is_address(to) else f"{to} = {' '.join(addresses)}"
    parts = [f"ip daddr {{ {', '.join(addresses)} }}", *l4_match(protocol, ports)]
    description = rule.get("description") or ""
    comment = _safe(f"{shown}: {description}" if description else shown)
    return f'{" ".join(parts)} {verdict} comment "{comment}"'


def _egress(name: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
    egress = record.get("egress") or {"mode": "open"}
    if not isinstance(egress, Mapping) or egress.get("mode") not in MODES:
        raise DesiredStateError(f"anklume_domains.{name}.egress must be a mapping with mode "
                                f"{', '.join(MODES)} (docs/generated-vars.md): run `make sync`")
    return egress


def forward(domains: Mapping[str, Any], resolver: Resolver = resolve) -> tuple[str, str]:
    """The forward chain's way-out rules (after the inter-domain ones) and the chains they
    jump to, as nft text; both empty when every domain is open and has no gateway."""
    jumps: list[str] = []
    chains: list[str] = []
    for name, record in domains.items():
        bridge = record["network"]
        via = record.get("via")
        egress = _egress(name, record)
        if via:
            jumps.append(f'\t\tiifname "{bridge}" counter drop comment "anklume: {name} '
                         f'leaves through {via["machine"]} only"\n')
            continue
        machines = egress.get("machines") or {}
        if egress["mode"] == "none":
            jumps.append(f'\t\tiifname "{bridge}" counter drop comment "anklume: {name} '
                         'egress none"\n')
            continue
        if egress["mode"] == "open" and not machines:
            continue
        jumps.append(f'\t\tiifname "{bridge}" jump egress-{name}\n')
        body = [f"\n\tchain egress-{name} {{\n"]
        for machine, narrow in machines.items():
            body.append(_machine(name, machine, narrow, chains, resolver))
        for rule in egress.get("rules") or []:
            body.append(f"\t\t{rule_line(rule, 'accept', resolver)}\n")
        if egress["mode"] == "list":
            body.append(f'\t\tcounter drop comment "anklume: {name} egress"\n')
        body.append("\t}\n")
        chains.append("".join(body))
    if not jumps:
        return "", ""
    head = ("\n\t\t# The way out of each domain (infra.yml egress and via): what a domain bridge "
            "sends\n\t\t# to anything but a domain bridge.\n")
    return head + "".join(jumps), "".join(chains)


def _machine(domain: str, machine: str, narrow: Mapping[str, Any], chains: list[str],
             resolver: Resolver) -> str:
    """A machine's narrower egress: drop it all, or jump to its chain (return = allowed)."""
    address = narrow.get("address")
    if not address or narrow.get("mode") not in ("none", "list"):
        raise DesiredStateError(f"anklume_domains.{domain}.egress.machines.{machine} needs an "
                                "address and mode none or list: run `make sync`")
    if narrow["mode"] == "none":
        return f'\t\tip saddr {address} counter drop comment "anklume: {machine} egress none"\n'
    lines = "".join(f"\t\t{rule_line(r, 'return', resolver)}\n" for r in narrow.get("rules") or [])
    chains.append(f"\n\tchain egress.{machine} {{\n{lines}"
                  f'\t\tcounter drop comment "anklume: {machine} egress"\n\t}}\n')
    return f"\t\tip saddr {address} jump egress.{machine}\n"


def via_bridges(domains: Mapping[str, Any]) -> list[str]:
    """The bridges of the domains that leave through a gateway (their DNS goes there)."""
    return sorted(r["network"] for r in domains.values() if r.get("via"))
