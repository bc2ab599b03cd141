"""The validator's rules for disposables (ADR-084): a domain's ``disposables:`` value, and the
range of host octets it reserves in that domain."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from anklume import checks
from anklume.disposables import NAME_INFIX, PRELOAD_MAX, Disposables, overlap, seconds
from anklume.model import Infra
from anklume.yamlload import Path

Report = Callable[[Path, str, str], None]
Section = Callable[[Any, str, Path], dict[str, Any]]
TTL_FIX = "write a duration such as 90s, 30m, 1h30m or 2d"


def disposable_range(value: str) -> tuple[int, int] | None:
    """``global.disposable_range`` parsed: LOW-HIGH within 1-252 (.253 and .254 are taken)."""
    rng = checks.dhcp_range(value)
    return rng if rng is not None and rng[1] <= 252 else None


def parse(value: Any, path: Path, section: Section, err: Report) -> Disposables | None:
    """A domain's ``disposables:`` (already typed as a boolean or a mapping)."""
    if value is False:
        return None
    if value is True:
        return Disposables()
    d = section(value, "disposables", path)
    preload = d.get("preload", 0)
    if not 0 <= preload <= PRELOAD_MAX:
        err((*path, "preload"), f"preload {preload} is outside 0-{PRELOAD_MAX}",
            f"keep at most {PRELOAD_MAX} ready (each is a running container)")
        preload = 0
    if "image" in d and not d["image"]:
        err((*path, "image"), "empty image name", "name an image alias or remove the key")
    ttl = d.get("ttl", Disposables.ttl)
    if seconds(ttl) is None:
        err((*path, "ttl"), f"{ttl!r} is not a duration", TTL_FIX)
    return Disposables(preload=preload, image=d.get("image", ""), ttl=ttl)


def reserve(infra: Infra, err: Report) -> None:
    """In a domain that allows disposables, their range holds no static address, no DHCP
    lease and no machine named like a disposable."""
    lo, hi = infra.disposable_range
    shown = f"{lo}-{hi}"
    for d in infra.domains:
        if d.disposables is None:
            continue
        path: Path = ("domains", d.name, "disposables")
        if overlap(infra.dhcp_range, infra.disposable_range):
            dlo, dhi = infra.dhcp_range
            err(("global", "disposable_range"),
                f"the disposables' range {shown} overlaps the DHCP range {dlo}-{dhi} "
                f"(domain {d.name} allows disposables)",
                "make the two ranges apart, e.g. dhcp_range \"100-199\" and "
                "disposable_range \"200-249\"")
        if d.disposables.preload > hi - lo + 1:
            err((*path, "preload"), f"preload {d.disposables.preload} is more than the "
                f"{hi - lo + 1} addresses of global.disposable_range {shown}",
                "lower preload or widen the range")
        for m in d.machines:
            mpath: Path = ("domains", d.name, "machines", m.name)
            if m.name.startswith(f"{d.name}{NAME_INFIX}") and m.name[
                    len(d.name) + len(NAME_INFIX):].isdigit():
                err(mpath, f"{m.name} is the name of one of domain {d.name}'s disposables",
                    "rename the machine")
            if m.ip:
                host = int(ipaddress.IPv4Address(m.ip)) & 0xFF
                if lo <= host <= hi:
                    err((*mpath, "ip"), f"{m.ip} is in the range reserved for domain "
                        f"{d.name}'s disposables (global.disposable_range {shown})",
                        f"use a host number outside {shown}")
