"""Read `egress:` of a domain or machine (ADR-093) into the model, with one line per mistake.

`open` and `none` are words; a list holds destinations (`to`: an IPv4 address, a CIDR or a
DNS name; `protocol`; `ports`). A DNS name is kept as written: it is resolved when the
rules are rendered (plugins/plugin_utils/egress.py), so the plan shows what it gave.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from anklume import checks
from anklume.model import EGRESS_LIST, EGRESS_NONE, EGRESS_OPEN, Egress, EgressRule
from anklume.schema import default
from anklume.yamlload import Path

Report = Callable[[Path, str, str], None]
Section = Callable[[Any, str, Path], dict[str, Any]]

PROTOCOLS = ("tcp", "udp", "icmp", "any")
# A DNS name: dot-separated labels of letters, digits and hyphens, at least two labels.
_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
_LIST = "[{to: 198.51.100.10, protocol: tcp, ports: [443]}]"


def destination(value: str) -> tuple[str | None, str]:
    """The normalised `to` (an address, a CIDR or a name), or None and why not."""
    text = value.strip()
    if ":" in text:
        return None, "IPv6 destinations are not supported (egress lists are IPv4; IPv6 " \
                     "leaving such a domain is dropped)"
    if re.fullmatch(r"[0-9./]+", text):
        try:
            net = ipaddress.IPv4Network(text, strict=True)
        except ValueError as exc:
            return None, f"{text!r} is not an IPv4 address or CIDR ({exc})"
        return (str(net.network_address) if net.prefixlen == 32 else str(net)), ""
    if _NAME.match(text):
        return text.rstrip(".").lower(), ""
    return None, f"{text!r} is neither an IPv4 address, a CIDR nor a DNS name"


def parse(value: Any, path: Path, section: Section, err: Report,
          words: tuple[str, ...] = (EGRESS_OPEN, EGRESS_NONE)) -> Egress | None:
    """An `egress:` value; None when it is wrong (reported)."""
    if isinstance(value, str):
        if value not in words:
            err(path, f"{value!r} is not one of {', '.join(words)} or a list",
                f"write {' or '.join(words)}, or a list like " + _LIST)
            return None
        return Egress(value)
    rules: list[EgressRule] = []
    ok = True
    for i, item in enumerate(value):
        rule = _rule(item, (*path, i), section, err)
        ok = ok and rule is not None
        if rule is not None:
            rules.append(rule)
    return Egress(EGRESS_LIST, rules) if ok else None


def _rule(item: Any, path: Path, section: Section, err: Report) -> EgressRule | None:
    r = section(item, "egress_rule", path)
    if "to" not in r:
        return None
    to, why = destination(r["to"])
    if to is None:
        err((*path, "to"), why, "write an IPv4 address, a CIDR like 198.51.100.0/24 or a "
            "DNS name like deb.debian.org")
    protocol = r.get("protocol", default("egress_rule", "protocol"))
    if protocol not in PROTOCOLS:
        guess = checks.did_you_mean(protocol, PROTOCOLS)
        err((*path, "protocol"), f"{protocol!r} is not one of {', '.join(PROTOCOLS)}",
            (f"did you mean '{guess}'? " if guess else "") + "use tcp, udp, icmp or any")
        return None
    ports: list[int | str] = []
    for j, raw in enumerate(r.get("ports", [])):
        port = checks.port(raw)
        if port is None:
            err((*path, "ports", j), f"{raw!r} is not a port",
                'use a number 1-65535 or a range like "8000-8080"')
            return None
        ports.append(port)
    if protocol == "icmp" and ports:
        err((*path, "ports"), "icmp has no ports", "remove ports or use protocol tcp or udp")
        return None
    if to is None:
        return None
    return EgressRule(to, protocol, tuple(ports), r.get("description", ""))
