#!/usr/bin/env python3
# SPDX-License-Identifier: AGPL-3.0-or-later
"""`make status`: one table of the declared instances and the managed orphans.

Reads the generated group_vars/all.yml and host_vars/ beside this directory (or DIR), then
every instance with its state in one call of the collection's Incus client. The domains a
template generated (a class of students) come after the others, grouped under one line per
template.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from anklume import colors

# The collection's own Incus client (collections/ links the repository in).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusClient,
    IncusError,
    ipv4s,
    is_managed,
)


def load(path: Path) -> dict:
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def main(argv: list[str]) -> int:
    """status.py [DIR] [--hosts a,b]: --hosts keeps only those instances (make status I=...)."""
    args = argv[1:]
    only: set[str] | None = None
    if "--hosts" in args:
        at = args.index("--hosts")
        only = {h for h in args[at + 1].split(",") if h}
        del args[at:at + 2]
    root = Path(args[0]) if args else Path.cwd()
    allvars = load(root / "group_vars" / "all.yml")
    if not allvars:
        print("status: no group_vars/all.yml here: run `make sync` first", file=sys.stderr)
        return 2
    remote = allvars.get("anklume_incus_remote") or "local"
    owner = allvars.get("anklume_project_name") or ""
    try:
        listed = IncusClient(remote).get("/1.0/instances",
                                         params={"all-projects": "true", "recursion": 2},
                                         what=f"reading instances from {remote}") or []
    except IncusError as exc:
        hint = "" if remote == "local" else (
            f" (a remote: trust it with make remote-add REMOTE={remote} TOKEN=<token>)")
        print(f"status: {exc}{hint}", file=sys.stderr)
        return 2
    current = {(i.get("project"), i["name"]): i for i in listed}
    header = ("DOMAIN", "INSTANCE", "TYPE", "STATE", "IP")
    rows: list[tuple[str, ...]] = []
    declared = set()
    templates = allvars.get("anklume_domain_templates") or {}
    group_of = {d: t for t, members in templates.items() for d in members}
    grouped: dict[str, list[tuple[str, ...]]] = {t: [] for t in templates}
    for domain, rec in (allvars.get("anklume_domains") or {}).items():
        project = rec.get("project") or domain
        for machine in rec.get("machines") or []:
            declared.add((project, machine))
            if only is not None and machine not in only:
                continue
            hv = load(root / "host_vars" / f"{machine}.yml")
            inst = current.get((project, machine))
            state = inst["status"].upper() if inst else "MISSING"
            pinned = f"({hv['instance_ip']})" if hv.get("instance_ip") else "-"
            ip = ",".join(ipv4s(inst or {})) or pinned
            row = (domain, machine, hv.get("instance_type", "lxc"), state, ip)
            (grouped[group_of[domain]] if domain in group_of else rows).append(row)
    for (project, name), inst in sorted(current.items()):
        if only is None and (project, name) not in declared and is_managed(inst, owner):
            rows.append((project, name, inst.get("type", ""), "ORPHAN", "-"))
    every = [header, *rows, *(r for g in grouped.values() for r in g)]
    widths = [max(len(str(r[i])) for r in every) for i in range(5)]
    # Each domain's name in its colour (ADR-090), on a terminal only: piped, the plain table.
    hexes = {d: rec.get("color_hex") for d, rec in (allvars.get("anklume_domains") or {}).items()
             if rec.get("color_hex")} if colors.wanted(sys.stdout.isatty(), os.environ) else {}

    def show(row: tuple[str, ...]) -> None:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        if row is not header and row[0] in hexes:
            cells[0] = colors.ansi(hexes[row[0]], str(row[0])) + cells[0][len(str(row[0])):]
        print("  ".join(cells).rstrip())

    for plain in (header, *rows):
        show(plain)
    for template, members in grouped.items():
        if only is not None and not members:
            continue
        running = sum(1 for r in members if r[3] == "RUNNING")
        print(f"-- template {template}: {len(templates[template])} domains, "
              f"{running}/{len(members)} instances running")
        for member in members:
            show(member)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
