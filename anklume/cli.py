"""Command line of the generator: ``generate.py [INFRA] [--dry-run] [--clean-orphans]``.

Its entry point turns :class:`AnklumeError` (through errors.guarded) into
messages and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from anklume import expand, orphans, render, validate, writer, yamlload
from anklume.errors import EXIT_OK, guarded


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="generate.py",
        description="Render infra.yml into inventory/, group_vars/ and host_vars/.",
    )
    p.add_argument("infra", nargs="?", default="infra.yml", metavar="INFRA_PATH",
                   help="the infra file (default: ./infra.yml)")
    p.add_argument("--dry-run", action="store_true",
                   help="print a unified diff of what would change; write nothing")
    p.add_argument("--clean-orphans", action="store_true",
                   help="delete generated files of domains/machines no longer in infra.yml")
    p.add_argument("--force", action="store_true",
                   help="with --clean-orphans, also delete protected (ephemeral: false) ones")
    p.add_argument("--quiet", action="store_true",
                   help="print only what needs attention (orphans, stale inventory), no summary")
    p.add_argument("--output", metavar="DIR",
                   help="where to write the tree (default: the infra file's directory)")
    return p


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Do the work; raise AnklumeError for anything the user must fix."""
    args = _parser().parse_args(argv)
    display: str = args.infra
    doc = yamlload.load_text(yamlload.read_text(args.infra, display), display)
    outdir = args.output or os.path.dirname(os.path.abspath(args.infra))
    infra, warnings = validate.validate(doc, roles_root=outdir)
    for w in warnings:
        print(f"warning: {w.render()}", file=err)
    bodies = render.render(infra)
    changes, unchanged = writer.plan(outdir, bodies)
    found = orphans.find(outdir, bodies)
    stale = orphans.stale_inventory(outdir, found)
    found = [o for o in found if o not in stale]
    if args.dry_run:
        for line in expand.describe(infra):
            print(line, file=out)
        for o in stale:
            print(f"would remove from the inventory: {o.rel} ({o.kind} {o.name} is no longer "
                  "in infra.yml)", file=out)
        out.write(writer.diff(changes))
        for o in found:
            print(o.describe(), file=out)
            if args.clean_orphans:
                verb = "would keep" if o.protected and not args.force else "would delete"
                print(f"{verb}: {o.rel}", file=out)
        if changes or stale:
            removed = f"{len(stale)} removed, " if stale else ""
            print(f"sync-dry: {len(changes)} files would be written, {removed}"
                  f"{len(unchanged)} unchanged", file=out)
        else:
            print(f"sync-dry: no changes ({len(unchanged)} files up to date)", file=out)
        return EXIT_OK
    written = writer.apply(outdir, changes)
    for o in orphans.retire(outdir, stale):
        print(f"removed from the inventory: {o.rel} ({o.kind} {o.name} is no longer in "
              "infra.yml; Ansible no longer acts on its hosts)", file=out)
    for o in found:
        print(o.describe(), file=out)
    tail = ""
    if args.clean_orphans and found:
        deleted, kept = orphans.clean(outdir, found, args.force)
        for o in deleted:
            print(f"deleted: {o.rel}", file=out)
        for o in kept:
            print(f"kept: {o.rel} (protected: use FORCE=1 with make sync-clean)", file=out)
        tail = f", {len(deleted)} orphans deleted" if deleted else ""
    if stale:
        tail = f", {len(stale)} stale inventory files removed" + tail
    if args.quiet:
        return EXIT_OK
    if written:
        print(f"sync: {written} files written, {len(unchanged)} unchanged{tail}", file=out)
    else:
        print(f"sync: no changes ({len(unchanged)} files up to date){tail}", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 ok, 1 cannot write, 2 bad input; never a traceback."""
    return guarded(lambda: run(argv, sys.stdout, sys.stderr),
                   "files already replaced are complete, none is half-written")
