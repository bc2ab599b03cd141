"""Disposables (ADR-084): what infra.yml says about them, shared by the generator and
`make disp`.

A domain that declares ``disposables:`` lets `make disp` start throwaway containers in its
project, on its bridge, under its isolation. Each takes a host octet of
``global.disposable_range`` (reserved in that domain: no static address, no DHCP lease) and
is named after it, ``<domain>-disp<octet>``: Incus refuses a second instance of one name in
a project, so the name is the address's reservation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Host octets reserved for disposables in a domain that allows them (after the DHCP range,
# before the firewall's .253 and the gateway's .254).
DEFAULT_RANGE = (200, 249)
DEFAULT_TTL = "1h"
# More ready ones than this is a pool, not a convenience: each costs a running container.
PRELOAD_MAX = 8
NAME_INFIX = "-disp"
_DURATION = re.compile(r"^(?:(\d+)([smhdw]))+$")
_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Disposables:
    """A domain's ``disposables:`` (``true`` is every default)."""

    preload: int = 0
    image: str = ""
    ttl: str = DEFAULT_TTL


def seconds(text: str) -> int | None:
    """Seconds of a duration such as ``90s``, ``30m``, ``1h30m`` or ``2d``; None if it is
    not one (or is zero)."""
    value = text.strip()
    if not _DURATION.match(value):
        return None
    total = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    return total or None


def name(domain: str, octet: int) -> str:
    """The disposable holding host octet OCTET of DOMAIN's subnet."""
    return f"{domain}{NAME_INFIX}{octet}"


def octet_of(domain: str, instance: str) -> int | None:
    """The host octet a disposable's name holds, None for any other name."""
    prefix = f"{domain}{NAME_INFIX}"
    tail = instance[len(prefix):] if instance.startswith(prefix) else ""
    return int(tail) if tail.isdigit() and str(int(tail)) == tail else None


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
