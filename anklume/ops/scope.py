"""DOMAIN= and I= (and LIMIT=, their old spelling): exactly the instances a user named.

DOMAIN parts name domains, templates (a template stands for every domain it generated) or
shell patterns over both; I parts name instances. Every part must match something, or the
command is refused before anything runs; DOMAIN and I together are refused too (which one
was meant?). ADR-071.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass

from anklume.ops.problems import refuse
from anklume.ops.tree import Tree


@dataclass(frozen=True)
class Scope:
    """What a command acts on. ``everything``: nothing was named."""

    hosts: tuple[str, ...]
    domains: tuple[str, ...]
    by_instance: bool = False
    everything: bool = False

    @property
    def named(self) -> bool:
        return not self.everything


def _parts(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _close(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {near[0]}? " if near else ""


def _domains_matching(tree: Tree, part: str) -> list[str]:
    found: list[str] = []
    for name in sorted(tree.domains):
        if fnmatch.fnmatchcase(name, part):
            found.append(name)
    for template, members in sorted(tree.templates.items()):
        if fnmatch.fnmatchcase(template, part):
            found += [d for d in members if d in tree.domains]
    return sorted(set(found))


def by_domain(tree: Tree, value: str, variable: str = "DOMAIN") -> Scope:
    domains: set[str] = set()
    names = sorted(tree.domains) + sorted(tree.templates)
    if not _parts(value):
        raise refuse(f"{variable}= is empty", f"name a domain ({', '.join(names)})")
    for part in _parts(value):
        found = _domains_matching(tree, part)
        if not found:
            hint = " (an instance: use I=)" if part in tree.instances else ""
            raise refuse(f"unknown domain {variable}={part}{hint}: it matches no domain or "
                         "template",
                         f"{_close(part, names)}domains and templates: {', '.join(names)}; "
                         "patterns such as student* work")
        domains.update(found)
    hosts = sorted(h for d in domains for h in tree.domains[d])
    return Scope(tuple(hosts), tuple(sorted(domains)))


def by_instance(tree: Tree, value: str, variable: str = "I") -> Scope:
    names = sorted(tree.instances)
    if not _parts(value):
        raise refuse(f"{variable}= is empty", f"name an instance ({', '.join(names)})")
    hosts: set[str] = set()
    for part in _parts(value):
        if part not in tree.instances:
            hint = " (a domain: use DOMAIN=)" if part in tree.domains else ""
            raise refuse(f"{variable}={part} is no declared instance{hint}",
                         f"{_close(part, names)}instances: {', '.join(names)}")
        hosts.add(part)
    domains = sorted({tree.instances[h].domain for h in hosts})
    return Scope(tuple(sorted(hosts)), tuple(domains), by_instance=True)


def by_limit(tree: Tree, value: str) -> Scope:
    """LIMIT= as it was used: domains (or templates, patterns) and instances; all of one kind."""
    parts = _parts(value)
    instances = [p for p in parts if p in tree.instances and not _domains_matching(tree, p)]
    if instances and len(instances) == len(parts):
        return by_instance(tree, value, "LIMIT")
    if instances:
        raise refuse(f"LIMIT={value} mixes domains and instances",
                     "write DOMAIN=<domains> or I=<instances>")
    return by_domain(tree, value, "LIMIT")


def resolve(tree: Tree, values: dict[str, str]) -> Scope:
    """The scope the variables name; every instance when none is given."""
    named = [v for v in ("DOMAIN", "I", "LIMIT") if v in values]
    if len(named) > 1:
        raise refuse(f"{' and '.join(n + '=' for n in named)} given together",
                     "give one: DOMAIN=<domains> or I=<instances>")
    if not named:
        hosts = sorted(tree.instances)
        return Scope(tuple(hosts), tuple(sorted(tree.domains)), everything=True)
    variable = named[0]
    if variable == "DOMAIN":
        return by_domain(tree, values["DOMAIN"])
    if variable == "I":
        return by_instance(tree, values["I"])
    return by_limit(tree, values["LIMIT"])
