"""`file_policies`: which `make copy` directions cross domains (ADR-085); and
`clipboard_policies`, the same for `make clip` between gui machines (ADR-091).

A copy within one domain needs no policy; across domains it needs an entry whose `from`
names the source's domain or the source machine and whose `to` names the target's domain
or the target machine. One direction per entry. A template stands for its every domain.

:func:`parse` checks the entries of infra.yml (the validator's part); :func:`allows` is
the decision `make copy` takes from what `make sync` rendered (anklume_file_policies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from anklume import checks
from anklume.model import FilePolicy, Infra
from anklume.schema import default

Path = tuple[str | int, ...]
Err = Callable[[Path, str, str], None]
Section = Callable[[Any, str, Path], dict[str, Any]]


def parse(raw: list[Any], infra: Infra, section: Section, err: Err,
          key: str = "file_policies") -> None:
    """Check every entry of RAW and add the normalised ones to infra.file_policies (a
    template becomes one entry per domain it made). KEY ``clipboard_policies``: the same
    for `make clip` (ADR-091), into infra.clipboard_policies."""
    kind = "clipboard_policy" if key == "clipboard_policies" else "file_policy"
    into = infra.clipboard_policies if key == "clipboard_policies" else infra.file_policies
    domains = {d.name for d in infra.domains}
    machines = {m.name for d in infra.domains for m in d.machines}
    templates = infra.domain_templates
    known = [*domains, *machines, *templates]
    for i, item in enumerate(raw):
        path: Path = (key, i)
        p = section(item, kind, path)
        sides: list[list[tuple[str, str]]] = []
        for end in ("from", "to"):
            if end not in p:
                continue
            name = p[end]
            if name in templates:
                sides.append([(d, "domain") for d in templates[name] if d in domains])
            elif name in domains:
                sides.append([(name, "domain")])
            elif name in machines:
                sides.append([(name, "machine")])
            else:
                guess = checks.did_you_mean(name, known)
                hint = f"did you mean '{guess}'? " if guess else ""
                err((*path, end), f"'{name}' is neither a domain nor a machine",
                    f"{hint}name a domain, template or machine of this file")
        if len(sides) < 2:
            continue
        text = p.get("description", default(kind, "description"))
        for src in sides[0]:
            for dst in sides[1]:
                into.append(FilePolicy(src[0], src[1], dst[0], dst[1], text))


def render(p: FilePolicy) -> dict[str, Any]:
    """One entry of anklume_file_policies (docs/generated-vars.md)."""
    return {"from": p.source, "from_kind": p.source_kind, "to": p.target,
            "to_kind": p.target_kind, "description": p.description}


def allows(policies: Iterable[Mapping[str, Any]], source: tuple[str, str],
           target: tuple[str, str]) -> bool:
    """Whether a copy from SOURCE to TARGET (each (machine, its domain)) may run: the same
    domain, or a rendered policy whose `from` names the source (its machine or domain) and
    whose `to` names the target."""
    if source[1] == target[1]:
        return True

    def names(p: Mapping[str, Any], side: str, end: tuple[str, str]) -> bool:
        kind = p.get(f"{side}_kind")
        return str(p.get(side)) == (end[0] if kind == "machine" else end[1])

    return any(names(p, "from", source) and names(p, "to", target) for p in policies)
