"""The isolation of a description as a Graphviz DOT text (`make graph`, ADR-090).

Drawn from the validated model, the one the nftables rules are rendered from (validate.py
builds it; render.py hands the same domains and policies to the ruleset): each domain a
cluster in its colour with its bridge, subnet, machines and disposable range; each flow the
rules let across domains an arrow (the admin domain to every domain, each declared
``network_policies`` entry); each domain's way out. Everything is written in the model's
order, so one description always gives the same text. The text carries its own sha256 as
the graph's ``comment``, which Graphviz copies into the SVG: a drawing can be checked
against its description without Graphviz.
"""

from __future__ import annotations

import hashlib
import re

from anklume import colors, egress, firewall
from anklume.model import (
    EGRESS_LIST,
    EGRESS_NONE,
    HOST,
    Domain,
    Infra,
    Machine,
    Policy,
    network_name,
)

FONT = "Helvetica"
INTERNET = "_internet"
HOST_NODE = "_host"
DIGEST_MARK = "anklume isolation graph, sha256 of its DOT text: "
_DIGEST = re.compile(re.escape(DIGEST_MARK) + r"([0-9a-f]{64})")


def _escaped(text: str) -> str:
    """TEXT for a DOT string: quotes and backslashes escaped, its line breaks as spaces."""
    return " ".join(str(text).splitlines()).replace("\\", "\\\\").replace('"', '\\"')


def _q(text: str) -> str:
    return f'"{_escaped(text)}"'


def _label(*lines: str) -> str:
    """A label of several lines (DOT's own \\n between them; empty ones left out)."""
    return '"' + "\\n".join(_escaped(line) for line in lines if line) + '"'


def _attrs(**values: str) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in values.items()) + "]"


def _bridge(d: Domain) -> str:
    return _q(f"bridge_{d.name}")  # machine names hold no "_": no clash


def _disposables(d: Domain) -> str:
    return _q(f"disp_{d.name}")


def _ports(p: Policy) -> str:
    ports = ", ".join(str(x) for x in p.ports)
    if p.protocol == "icmp":
        return "icmp"
    if p.protocol == "any":
        return f"tcp/udp {ports}" if ports else "any protocol"
    return f"{p.protocol} {ports}" if ports else f"{p.protocol}, every port"


def _machine(infra: Infra, m: Machine) -> str:
    where = m.ip or "DHCP"
    lines = [m.name, f"{where} ({m.type})"]
    if m.name == firewall.NAME and infra.firewall_mode == "vm":
        lines.append(f"routes between domains, .{firewall.OCTET} on every bridge")
    shape = {"shape": "box3d"} if m.type == "vm" else {}
    return f"    {_q(m.name)} {_attrs(label=_label(*lines), **shape)};"


def _domain(infra: Infra, d: Domain) -> list[str]:
    color = _q(colors.hex_of(d.color))
    frame = _attrs(label=_label(d.name, d.description), color=color,
                   fillcolor=_q(colors.tint(d.color)), style=_q("rounded,filled"), penwidth="3")
    bridge = _attrs(label=_label(network_name(d.name), infra.subnet(d)), shape="ellipse",
                    color=color)
    out = [f"  subgraph {_q('cluster_' + d.name)} {{", f"    graph {frame};",
           f"    {_bridge(d)} {bridge};"]
    out += [_machine(infra, m) for m in d.machines]
    if d.disposables is not None:
        lo, hi = infra.disposable_range
        span = f"{infra.base_subnet}.{d.subnet_id}.{lo}-{hi}"
        node = _attrs(label=_label("disposables", span), style=_q("rounded,dashed"))
        out.append(f"    {_disposables(d)} {node};")
    out.append("  }")
    return out


def _wiring(d: Domain) -> list[str]:
    """Each machine (and disposable) of D on its bridge."""
    ends = [_q(m.name) for m in d.machines]
    if d.disposables is not None:
        ends.append(_disposables(d))
    color = _q(colors.hex_of(d.color))
    return [f"  {_bridge(d)} -> {end} {_attrs(dir='none', color=color)};" for end in ends]


def _end(domains: dict[str, Domain], name: str, kind: str) -> str:
    """A policy's end: a domain's bridge, a machine, or the host."""
    if kind == "domain":
        return _bridge(domains[name])
    return _q(HOST_NODE) if kind == HOST else _q(name)


def _flows(infra: Infra) -> list[str]:
    """The admin domain to every domain, then each declared policy, in the rules' order."""
    domains = {d.name: d for d in infra.domains}
    # A policy's source is a domain or a machine (the two never share a name).
    home = {**{m.name: d for d in infra.domains for m in d.machines}, **domains}
    out = []
    admin = domains.get(infra.admin_domain)
    if admin is not None:
        color = _q(colors.hex_of(admin.color))
        reach = _attrs(color=color, style="bold")  # the title says what bold means
        out += [f"  {_bridge(admin)} -> {_bridge(d)} {reach};"
                for d in infra.domains if d is not admin]
    for p in infra.policies:
        arrow = _attrs(label=_label(_ports(p), p.description),
                       color=_q(colors.hex_of(home[p.source].color)))
        out.append(f"  {_end(domains, p.source, p.source_kind)} -> "
                   f"{_end(domains, p.target, p.target_kind)} {arrow};")
    return out


def _ways_out(infra: Infra) -> list[str]:
    """Each domain's way out (ADR-093): NAT to the uplink (nat: true, or left to the role's
    default), labelled with what a list allows; none without an arrow; via to its gateway."""
    # Written internet -> bridge and drawn backwards: the internet then sits left of every
    # bridge, and the arrows do not cross the machines (right of their bridge).
    out = []
    for d in infra.domains:
        if d.via:
            way = _attrs(style="dashed", label=_q("via: all its traffic, DNS too"))
            out.append(f"  {_bridge(d)} -> {_q(d.via)} {way};")
        elif d.nat is not False and d.egress.mode != EGRESS_NONE:
            way = _attrs(style="dashed", dir="back")
            if d.egress.mode == EGRESS_LIST:
                way = _attrs(style="dashed", dir="back",
                             label=_label("only: " + egress.describe(d.egress)))
            out.append(f"  {_q(INTERNET)} -> {_bridge(d)} {way};")
    return out


def _has_way_out(d: Domain) -> bool:
    return not d.via and d.nat is not False and d.egress.mode != EGRESS_NONE


def _firewall_links(infra: Infra) -> list[str]:
    """firewall_mode vm: sys-firewall's NIC on every other domain's bridge, at .253."""
    record = firewall.record(infra)
    if record is None:
        return []
    return [f"  {_bridge(d)} -> {_q(firewall.NAME)} "
            f"{_attrs(dir='none', style='dotted', label=_q(record['addresses'][d.name]))};"
            for d in infra.domains if d.name != infra.admin_domain]


def _title(infra: Infra) -> str:
    if not infra.isolation:
        rules = "global.isolation false: nothing between domains is filtered"
    elif infra.firewall_mode == "vm":
        rules = "firewall_mode vm: every flow between domains passes through sys-firewall"
    else:
        rules = "firewall_mode host: the host's nftables table filters between domains"
    admin = (f"bold: the admin domain ({infra.admin_domain}) reaches every domain on every port"
             if infra.admin_domain else "")
    return _label(f"{infra.project_name}: isolation between domains", rules, admin,
                  "thin: a declared network policy; dashed: the way out (NAT)",
                  "replies come back; every other flow between domains is dropped")


def _body(infra: Infra) -> list[str]:
    font = _q(FONT)
    graph = _attrs(label=_title(infra), labelloc="t", rankdir="LR", fontname=font)
    node = _attrs(fontname=font, fontsize="10", shape="box", style=_q("rounded,filled"),
                  fillcolor="white")
    out = ["digraph isolation {", f"  graph {graph};", f"  node {node};",
           f"  edge {_attrs(fontname=font, fontsize='9')};"]
    for d in infra.domains:
        out += _domain(infra, d)
    if any(_has_way_out(d) for d in infra.domains):
        out.append(f"  {_q(INTERNET)} {_attrs(label=_q('internet (NAT)'), shape='egg')};")
    if any(p.target_kind == HOST for p in infra.policies):
        out.append(f"  {_q(HOST_NODE)} {_attrs(label=_q('host'), shape='house')};")
    for d in infra.domains:
        out += _wiring(d)
    flows = _flows(infra) if infra.isolation else []  # without rules, no flow is singled out
    return [*out, *_firewall_links(infra), *flows, *_ways_out(infra), "}"]


def dot(infra: Infra) -> str:
    """The whole DOT text, its digest on the second line."""
    lines = _body(infra)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return "\n".join([lines[0], f"  comment={_q(DIGEST_MARK + digest)};", *lines[1:]]) + "\n"


def digest_in(text: str) -> str | None:
    """The digest a DOT text or the SVG drawn from it carries, or None."""
    found = _DIGEST.search(text)
    return found.group(1) if found else None
