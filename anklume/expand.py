"""Expand ``domain_templates`` into plain domains before they are validated (ADR-060).

A template is one domain written once with a ``count``: domain N is ``<name><NN>`` (fixed
width, so a larger count never renames the others), its subnet_id is
``first_subnet_id + N - 1`` and machine ``KEY`` becomes ``<domain>-KEY`` at
``<base_subnet>.<subnet_id>.<ip_host>``. The generated domains then go through the same
validation as hand-written ones; :attr:`Expansion.aliases` lets the validator report their
problems at the template's own lines.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from anklume import checks
from anklume.model import Infra
from anklume.schema import default
from anklume.yamlload import Path

Report = Callable[[Path, str, str], None]
# Keys only a template has; the rest of its body is an ordinary domain.
TEMPLATE_ONLY = ("count", "first_subnet_id", "digits")
PLACEHOLDERS = ("{n}", "{domain}")
DIGITS_MAX = 3


@dataclass(frozen=True)
class Alias:
    """Where a generated path was written: the template path, and the domain it made."""

    path: Path
    domain: str


@dataclass
class Expansion:
    # Raw domain mappings by generated name, in template then number order.
    domains: dict[str, Any] = field(default_factory=dict)
    # Generated path prefix -> where the template wrote it.
    aliases: dict[Path, Alias] = field(default_factory=dict)
    # Template name -> its generated domains, in number order.
    members: dict[str, list[str]] = field(default_factory=dict)


def domain_names(template: str, count: int, digits: int) -> list[str]:
    """The domains a template makes: ``student01`` .. ``studentNN``."""
    return [f"{template}{n:0{digits}d}" for n in range(1, count + 1)]


def _fill(text: Any, number: str, domain: str) -> Any:
    """``{n}`` and ``{domain}`` in a description become the domain's number and name."""
    if not isinstance(text, str):
        return text
    return text.replace("{n}", number).replace("{domain}", domain)


def _int(raw: Mapping[str, Any], key: str, path: Path, err: Report, low: int, high: int,
         fix: str) -> int | None:
    if key not in raw:
        err(path, f"missing required key '{key}'", fix)
        return None
    value = raw[key]
    if not isinstance(value, int) or isinstance(value, bool):
        err((*path, key), f"{key} must be an integer, got {value!r}", fix)
        return None
    if not low <= value <= high:
        err((*path, key), f"{key} {value} is outside {low}-{high}", fix)
        return None
    return value


def _machines(raw: Any, path: Path, err: Report) -> dict[str, tuple[Any, int | None]]:
    """The template's machines by key, each with its ip_host (checked once, not per domain)."""
    out: dict[str, tuple[Any, int | None]] = {}
    if not isinstance(raw, dict):
        return out  # the domain validation reports the wrong type
    for key, mraw in raw.items():
        mpath = (*path, "machines", str(key))
        host: int | None = None
        if isinstance(mraw, dict):
            mraw = dict(mraw)
            if "ip" in mraw:
                err((*mpath, "ip"), "a template machine has no fixed ip (each domain has its "
                    "own subnet)", f"write the host octet instead, e.g. ip_host: "
                    f"{str(mraw['ip']).rsplit('.', 1)[-1] or 10}")
                del mraw["ip"]
            if "ip_host" in mraw:
                host = _int(mraw, "ip_host", mpath, err, 1, 253,
                            "write the last octet of the address, e.g. ip_host: 10")
                del mraw["ip_host"]
        out[str(key)] = (mraw, host)
    return out


def _template(name: str, raw: dict[str, Any], path: Path, base: str | None,
              hand: Mapping[Any, Any], err: Report, exp: Expansion) -> None:
    count = _int(raw, "count", path, err, 1, 255, "write how many domains, e.g. count: 24")
    first = _int(raw, "first_subnet_id", path, err, 0, 254,
                 "write the subnet_id of domain 1, e.g. first_subnet_id: 11")
    digits = _int(raw, "digits", path, err, 1, DIGITS_MAX, "use 1, 2 or 3") \
        if "digits" in raw else default("domain_template", "digits")
    if "subnet_id" in raw:
        err((*path, "subnet_id"), "a template has no single subnet_id",
            "write first_subnet_id: domain N gets first_subnet_id + N - 1")
    if count is None or first is None or digits is None:
        return
    if count > 10**digits - 1:
        err((*path, "count"), f"count {count} needs more than {digits} digits",
            f"set digits: {len(str(count))} (or lower the count)")
        return
    if first + count - 1 > 254:
        err((*path, "first_subnet_id"), f"{count} domains from subnet_id {first} run to "
            f"{first + count - 1}, beyond 254", f"use first_subnet_id {255 - count} or lower")
        return
    names = domain_names(name, count, digits)
    reason = checks.domain_name(names[-1])
    if reason:
        err(path, f"template '{name}' makes domain names like {names[-1]}: {reason}",
            "shorten the template name")
        return
    body = {k: v for k, v in raw.items() if k not in (*TEMPLATE_ONLY, "subnet_id")}
    machines = _machines(body.get("machines"), path, err)
    exp.members[name] = names
    for index, domain in enumerate(names):
        if domain in hand or domain in exp.domains:
            err(path, f"template '{name}' makes a domain that is already declared "
                f"(in {domain})",
                "rename the template or that domain, or lower the count")
            continue
        number, sid = domain[len(name):], first + index
        generated = copy.deepcopy(body)
        generated["subnet_id"] = sid
        generated["description"] = _fill(body.get("description"), number, domain)
        if "description" not in body:
            del generated["description"]
        dpath: Path = ("domains", domain)
        exp.aliases[dpath] = Alias(path, domain)
        exp.aliases[(*dpath, "subnet_id")] = Alias((*path, "first_subnet_id"), domain)
        if machines:
            generated["machines"] = {}
        for key, (mraw, host) in machines.items():
            machine = f"{domain}-{key}"
            mbody = copy.deepcopy(mraw)
            if isinstance(mbody, dict):
                if "description" in mbody:
                    mbody["description"] = _fill(mbody["description"], number, domain)
                if host is not None and base is not None:
                    mbody["ip"] = f"{base}.{sid}.{host}"
            generated["machines"][machine] = mbody
            mpath = (*dpath, "machines", machine)
            exp.aliases[mpath] = Alias((*path, "machines", key), domain)
            exp.aliases[(*mpath, "ip")] = Alias((*path, "machines", key, "ip_host"), domain)
        exp.domains[domain] = generated


def expand(raw: Any, hand: Mapping[Any, Any], base: str | None, err: Report) -> Expansion:
    """The domains ``raw`` (domain_templates) makes; ``hand`` is the hand-written domains,
    ``base`` the base_subnet (None when invalid: no address is derived)."""
    exp = Expansion()
    if not isinstance(raw, dict):
        return exp  # the top-level section check reports the wrong type
    for name, traw in raw.items():
        path: Path = ("domain_templates", str(name))
        if not isinstance(name, str) or not name:
            err(path, f"template name {name!r} is not a string", "use a name like student")
            continue
        if name in hand:
            err(path, f"template '{name}' has the name of a domain",
                "rename one (templates and domains share Ansible's group names)")
            continue
        if not isinstance(traw, dict):
            got = "nothing" if traw is None else type(traw).__name__
            err(path, f"a template must be a mapping, got {got}",
                "write count:, first_subnet_id: and machines: under it")
            continue
        _template(name, traw, path, base, hand, err, exp)
    return exp


def describe(infra: Infra) -> list[str]:
    """One line per template saying what it expanded to (make sync-dry)."""
    lines = []
    by_name = {d.name: d for d in infra.domains}
    for name, domains in infra.domain_templates.items():
        made = [by_name[d] for d in domains if d in by_name]
        if not made:
            continue
        first, last = made[0], made[-1]
        machines = sum(len(d.machines) for d in made)
        span = first.name if first is last else f"{first.name}..{last.name}"
        nets = infra.subnet(first) if first is last \
            else f"{infra.subnet(first)}..{infra.subnet(last)}"
        lines.append(f"template {name}: {len(made)} domains {span}, {machines} machines, "
                     f"subnets {nets}")
    return lines
