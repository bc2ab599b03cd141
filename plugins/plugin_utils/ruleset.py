# SPDX-License-Identifier: AGPL-3.0-or-later
"""The domain isolation ruleset, as nftables text, from the variables `make sync` writes.

One pure function, no Ansible import (ADR-072): the filter anklume.incus.nftables_ruleset
hands it the play's variables for host mode (roles/incus_nftables, also the file a remote
host loads) and for the firewall instance (roles/sys_firewall, its own interface names);
tests/unit/test_ruleset.py renders every example and test lab against golden files.
``domains`` is ``anklume_domains`` (docs/generated-vars.md), ``policies`` is
``anklume_network_policies``. Bad input raises DesiredStateError with one line and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.anklume.incus.plugins.plugin_utils import egress
from ansible_collections.anklume.incus.plugins.plugin_utils.desired_state import (
    DesiredStateError,
    as_bool,
)

HEADER = """\
#!/usr/sbin/nft -f
# AnKLuMe domain isolation, rendered by roles/incus_nftables from infra.yml
# (docs/network-isolation.md). Load it with `nft -f` (or
# scripts/deploy-nftables.sh on the host): the first two statements make the
# load replace the table in one transaction, whether it exists or not.
table inet {table} {{
}}
delete table inet {table}
"""

# What every domain needs from the host (judged in the input chain), in this order.
HOST_SERVICES = """\
		# Replies to the host's own connections, and the ICMP errors they bring.
		ct state established,related accept

		# What a domain needs from the host: neighbour discovery, router solicitation, ICMP
		# errors, DHCPv4 and DHCPv6 (each bridge's dnsmasq answers on its own bridge only).
		icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
		icmp type { destination-unreachable, time-exceeded, parameter-problem } accept
		meta nfproto ipv4 udp sport 68 udp dport 67 accept
		meta nfproto ipv6 udp dport 547 accept

		# DNS and ping to the host's address on the bridge the packet came in on (its own
		# dnsmasq); the gateway addresses of the other domains are closed like any port.
		fib daddr . iif type local meta l4proto { tcp, udp } th dport 53 accept
		fib daddr . iif type local icmp type echo-request accept
		fib daddr . iif type local icmpv6 type echo-request accept
"""  # noqa: E501 - nft lines are kept whole, as the kernel lists them

PROTOCOLS = ("tcp", "udp", "icmp", "any")
KINDS_FROM = ("domain", "machine")
KINDS_TO = ("domain", "machine", "host")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_IPV4 = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}(/(3[0-2]|[12]?[0-9]))?$")
_PORT = re.compile(r"^[0-9]{1,5}(-[0-9]{1,5})?$")
# A comment is one nft string: no quote, backslash or newline; at most 100 characters
# (a text up to 105 is kept whole, as the template's truncate did).
_UNSAFE = re.compile(r'["\\\n]')
COMMENT_LENGTH, COMMENT_LEEWAY = 100, 5


def _unique_sorted(values: Iterable[str]) -> list[str]:
    """Jinja's ``unique | sort``: case-insensitive, the first spelling kept."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower(), value)
    return sorted(seen.values(), key=str.lower)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _comment(policy: Mapping[str, Any]) -> str:
    text = policy.get("description") or f"{policy.get('from')} to {policy.get('to')}"
    text = _UNSAFE.sub("'", str(text))
    return text if len(text) <= COMMENT_LENGTH + COMMENT_LEEWAY else text[:COMMENT_LENGTH]


class _Topology:
    """The checked inputs: each domain's bridge, and each machine's."""

    def __init__(self, domains: Any, admin_domain: str) -> None:
        if not isinstance(domains, Mapping) or not all(
                isinstance(d, Mapping) and isinstance(d.get("network"), str)
                and _INTERFACE.match(d["network"]) for d in domains.values()):
            raise DesiredStateError(
                "anklume_domains must map each domain to a record with `network` (an interface "
                "name of at most 15 characters): run `make sync` (docs/generated-vars.md)")
        if admin_domain and admin_domain not in domains:
            raise DesiredStateError(
                f"anklume_admin_domain '{admin_domain}' is not a domain (known: "
                f"{', '.join(domains)}); set global.admin_domain, or \"\" for none")
        self.domains = domains
        self.bridges = _unique_sorted(d["network"] for d in domains.values())
        self.machine_net: dict[str, str] = {}
        for record in domains.values():
            for machine in record.get("machines") or []:
                self.machine_net.setdefault(machine, record["network"])

    def net_of(self, name: str, kind: str) -> str:
        return self.domains[name]["network"] if kind == "domain" else self.machine_net[name]

    def check(self, index: int, p: Any) -> None:
        ok = isinstance(p, Mapping) and p.get("from_kind") in KINDS_FROM \
            and p.get("to_kind") in KINDS_TO and p.get("protocol") in PROTOCOLS
        ports = p.get("ports") or [] if isinstance(p, Mapping) else []
        ok = ok and self._end_ok(p, "from") and self._end_ok(p, "to") \
            and isinstance(ports, list) and all(_PORT.match(str(x)) for x in ports) \
            and not (ports and p["protocol"] == "icmp")
        if not ok:
            ends = (p.get("from", "?"), p.get("to", "?")) if isinstance(p, Mapping) else ("?", "?")
            raise DesiredStateError(
                f"network_policies[{index}] ({ends[0]} -> {ends[1]}): needs from/to naming a "
                "domain or a machine, or to: host (machines need from_cidr/to_cidr), protocol "
                'tcp|udp|icmp|any and ports as numbers or "a-b" ranges (none with icmp); run '
                "`make sync`")

    def _end_ok(self, p: Mapping[str, Any], end: str) -> bool:
        kind, name = p.get(f"{end}_kind"), p.get(end)
        if kind == "domain":
            return name in self.domains
        if kind == "machine":
            return name in self.machine_net and bool(_IPV4.match(str(p.get(f"{end}_cidr", ""))))
        return end == "to" and name == "host"

    def policy_rule(self, p: Mapping[str, Any]) -> str:
        """One declared policy: its source, destination and protocol part, then its comment."""
        parts = [f'iifname "{self.net_of(p["from"], p["from_kind"])}"']
        if p["from_kind"] == "machine":
            parts.append(f"ip saddr {p['from_cidr']}")
        if p["to_kind"] == "host":
            parts.append("fib daddr . iif type local")
        else:
            parts.append(f'oifname "{self.net_of(p["to"], p["to_kind"])}"')
            if p["to_kind"] == "machine":
                parts.append(f"ip daddr {p['to_cidr']}")
        ports = ", ".join(str(x) for x in p.get("ports") or [])
        parts += egress.l4_match(p["protocol"], ports, icmp="meta l4proto { icmp, ipv6-icmp }")
        return f'{" ".join(parts)} accept comment "{_comment(p)}"'


def _on_interfaces(domains: Any, interfaces: Mapping[str, str]) -> Any:
    """The domain records with the firewall instance's interface in place of each bridge."""
    if not isinstance(domains, Mapping):
        return domains  # as given: _Topology says what is wrong with it
    for name in interfaces:
        if name not in domains:
            raise DesiredStateError(
                f"interfaces names '{name}', not a domain (known: {', '.join(domains)}): "
                "run `make sync` (anklume_firewall.interfaces)")
    missing = [name for name in domains if name not in interfaces]
    if missing:
        raise DesiredStateError(
            f"interfaces has no entry for {', '.join(missing)}: run `make sync` "
            "(anklume_firewall.interfaces)")
    return {name: {**record, "network": interfaces[name]} for name, record in domains.items()}


def render(table: str, domains: Any, policies: Any = (), admin_domain: str = "",
           priority: int = -10, firewall_mode: str = "host", log_drops: Any = False,
           enabled: Any = True, interfaces: Mapping[str, str] | None = None,
           resolver: egress.Resolver = egress.resolve) -> str:
    """The whole ruleset file for TABLE: replace the table, then (when ENABLED) its chains.

    firewall_mode ``vm`` (ADR-066): no bridge reaches another here, sys-firewall routes.
    LOG_DROPS counts and logs dropped flows by interface pair (the firewall instance does).
    INTERFACES (domain -> interface name) puts the firewall instance's own interfaces in
    place of the host's bridges. Each domain's way out (egress, via: ADR-093) is the
    host's: the firewall instance does not carry it. RESOLVER gives a DNS name's addresses.
    """
    out = [HEADER.format(table=table)]
    if not as_bool(enabled):
        return "".join(out)
    if interfaces is not None:
        domains = _on_interfaces(domains, interfaces)
    log_drops = as_bool(log_drops)
    net = _Topology(domains, admin_domain)
    policies = list(policies or [])
    for index, policy in enumerate(policies):
        net.check(index, policy)
    to_host = [p for p in policies if p["to_kind"] == "host"]
    between = [p for p in policies if p["to_kind"] != "host"]
    only_firewall = firewall_mode == "vm"
    bridges, several = net.bridges, len(net.bridges) > 1
    add = out.append

    add(f'\ntable inet {table} {{\n\tcomment "AnKLuMe domain isolation (roles/incus_nftables)"\n')
    if log_drops and several:
        add("\n\t# Dropped flows by domain pair (input and output interface), with their counters."
            "\n\tset drops {\n\t\ttypeof iifname . oifname\n\t\tsize 65535\n\t\tflags dynamic"
            "\n\t\tcounter\n\t}\n")
    if only_firewall and several:
        subnets = ", ".join(_unique_sorted(d["subnet"] for d in domains.values()))
        add("\n\t# firewall_mode vm: the bridges carry inter-domain frames to and from "
            "sys-firewall, and\n\t# br_netfilter passes them through the host's IP hooks, where "
            "Incus's masquerade would\n\t# rewrite their source. They are not the host's "
            "connections: left untracked, untouched.\n\tchain prerouting {\n\t\ttype filter "
            "hook prerouting priority raw; policy accept;\n"
            f"\t\tiifname {{ {_quoted(bridges)} }} ip saddr {{ {subnets} }} ip daddr "
            f"{{ {subnets} }} fib daddr type != local notrack\n\t}}\n")

    add(f"\n\tchain forward {{\n\t\ttype filter hook forward priority {priority}; policy accept;\n")
    if not only_firewall:
        add("\n\t\t# Replies and related flows (ICMP errors, ...) of allowed connections."
            "\n\t\tct state established,related accept\n")
    add("\n\t\t# Traffic within a domain's bridge.\n")
    add("".join(f'\t\tiifname "{b}" oifname "{b}" accept\n' for b in bridges))
    if admin_domain and several and not only_firewall:
        admin_net = domains[admin_domain]["network"]
        others = [b for b in bridges if b != admin_net]
        add(f"\n\t\t# The admin domain ({admin_domain}) reaches every domain.\n"
            f'\t\tiifname "{admin_net}" oifname {{ {_quoted(others)} }} accept\n')
    if between and not only_firewall:
        add("\n\t\t# Declared network policies (infra.yml network_policies).\n")
        add("".join(f"\t\t{net.policy_rule(p)}\n" for p in between))
    if several:
        if only_firewall:
            add("\n\t\t# firewall_mode vm: sys-firewall is the only path between domains; "
                "nothing crosses here.\n")
        if log_drops:
            add("\n\t\t# Log each dropped flow (the kernel line names IN= and OUT=), at most 10 a "
                f"second.\n\t\tiifname {{ {_quoted(bridges)} }} oifname {{ {_quoted(bridges)} }} "
                'update @drops { iifname . oifname } limit rate 10/second log prefix "anklume '
                'drop: " level info\n')
        add("\n\t\t# Every other pair of domain bridges, IPv4 and IPv6.\n"
            f"\t\tiifname {{ {_quoted(bridges)} }} oifname {{ {_quoted(bridges)} }} counter drop "
            'comment "anklume: inter-domain"\n')
    way_out, egress_chains = ("", "") if interfaces is not None else egress.forward(
        domains, resolver)
    add(way_out)
    add("\t}\n")
    add(egress_chains)

    if bridges:
        add(f"\n\tchain input {{\n\t\ttype filter hook input priority {priority}; policy accept;"
            "\n\n\t\t# Only what comes in from a domain bridge is judged here.\n"
            f"\t\tiifname != {{ {_quoted(bridges)} }} accept\n\n")
        via = [] if interfaces is not None else egress.via_bridges(domains)
        if via:
            add("\t\t# The DNS of a domain that leaves through a gateway goes to the gateway.\n"
                f"\t\tiifname {{ {_quoted(via)} }} meta l4proto {{ tcp, udp }} th dport 53 "
                'counter drop comment "anklume: DNS through the gateway"\n\n')
        add(HOST_SERVICES)
        if to_host:
            add("\n\t\t# Declared network policies to the host (infra.yml network_policies, "
                "to: host).\n")
            add("".join(f"\t\t{net.policy_rule(p)}\n" for p in to_host))
        add('\n\t\t# Everything else from a domain to the host, IPv4 and IPv6.\n'
            '\t\tcounter drop comment "anklume: domain to host"\n\t}\n')
    add("}\n")
    return "".join(out)
