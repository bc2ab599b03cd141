"""`make backup DOMAIN=|I= [OUT=] [ENCRYPT=] [SNAPSHOTS=0]` (ADR-087, docs/backups.md).

One archive per domain in scope: each instance's `incus export` (zstd, its snapshots unless
SNAPSHOTS=0) taken while the instance is frozen, so what is read is one instant of its
disk, the domain's part of infra.yml, its generated and hand-written vars, and the manifest.
Written under a hidden temporary name in OUT and renamed at the very end, through `age` when
ENCRYPT= names recipients: an interrupted backup leaves no file with the final name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from anklume import __version__, yamlload
from anklume.ops import backup_archive as archive
from anklume.ops import backup_crypt as crypt
from anklume.ops import instances
from anklume.ops.context import Context
from anklume.ops.instances import Live
from anklume.ops.problems import refuse
from anklume.ops.tree import Tree

SUFFIX = ".anklume-backup"
MiB = 1024 * 1024


def _out(ctx: Context) -> Path:
    """OUT=, checked (the default backups/ is made when the first archive is written)."""
    value = ctx.get("OUT")
    if not value:
        return ctx.root / "backups"
    out = Path(value).expanduser()
    if not out.is_dir():
        raise refuse(f"OUT={value} is not a directory here",
                     "name an existing directory to receive the archives")
    return out


def _infra_slice(ctx: Context, tree: Tree, domain: str) -> bytes:
    """domains.<domain> of infra.yml (or the template that makes it), as YAML to merge."""
    try:
        doc = yamlload.plain((ctx.root / ctx.infra).read_text(encoding="utf-8")) or {}
    except OSError:
        doc = {}
    rec = (doc.get("domains") or {}).get(domain)
    if rec is not None:
        part: dict[str, Any] = {"domains": {domain: rec}}
    else:
        template = next((t for t, ds in tree.templates.items() if domain in ds), None)
        recs = doc.get("domain_templates") or {}
        part = {"domain_templates": {template: recs.get(template)}} if template else {}
    head = f"# domain {domain} of {ctx.infra}, as it was backed up: merge it, never blindly\n"
    return (head + yaml.safe_dump(part, sort_keys=False)).encode()


def _server_version(ctx: Context, tree: Tree) -> str:
    rc, out = instances.incus(ctx, ["incus", "query", instances.address(tree, "/1.0")])
    try:
        return str(json.loads(out)["environment"]["server_version"]) if rc == 0 else "unknown"
    except (ValueError, KeyError, TypeError):
        return "unknown"


def _export(ctx: Context, tree: Tree, writer: archive.Writer, live: Live,
            snapshots: list[str] | None) -> dict[str, Any]:
    """The instance's export into WRITER, taken frozen when it runs; its manifest record."""
    record: dict[str, Any] = {"name": live.name, "running": live.running,
                              "snapshots": snapshots or []}
    started = time.monotonic()
    frozen = False
    if live.running:
        rc, out = instances.incus(ctx, ["incus", "pause", "--project", live.project,
                                        instances.address(tree, live.name)])
        if rc:
            raise OSError(f"cannot freeze {live.name} for a consistent export: {out}")
        frozen = True
    print(f"backup: {live.name}: exporting{' (frozen meanwhile)' if frozen else ''}...",
          file=ctx.err, flush=True)
    argv = ["incus", "export", "--project", live.project, instances.address(tree, live.name),
            "-", "--compression", "zstd", "--quiet",
            *([] if snapshots is not None else ["--instance-only"])]
    try:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors,
                                    stdin=subprocess.DEVNULL, env=ctx.env())
            assert proc.stdout is not None
            try:
                chunks, size = writer.add_stream(f"instances/{live.name}.tar.zst", proc.stdout)
            finally:
                proc.stdout.close()
                rc = proc.wait()
            errors.seek(0)
            if rc:
                why = errors.read().decode(errors="replace").strip().removeprefix("Error: ")
                raise OSError(f"incus export of {live.name} failed: {why}")
    finally:
        if frozen:
            instances.incus(ctx, ["incus", "resume", "--project", live.project,
                                  instances.address(tree, live.name)])
    record.update(chunks=chunks, size=size)
    print(f"backup: {live.name}: {size / MiB:.1f} MiB in {chunks} chunk(s), "
          f"{time.monotonic() - started:.1f} s", file=ctx.err, flush=True)
    return record


def _one(ctx: Context, tree: Tree, domain: str, hosts: list[str], lives: dict[str, Live],
         out: Path, encrypt: list[str] | None,
         taken: dict[tuple[str, str], list[str]] | None, server: str) -> Path:
    """TAKEN: each instance's snapshot names, None for an archive without snapshots."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = out / f"{domain}-{stamp}{SUFFIX}{crypt.SUFFIX if encrypt else ''}"
    partial = out / f".{final.name}.partial-{os.getpid()}"
    try:
        with crypt.writer(partial, encrypt) as stream:
            writer = archive.Writer(stream)
            writer.add_bytes("infra.yml", _infra_slice(ctx, tree, domain))
            for rel in [f"group_vars/{domain}.yml", *(f"host_vars/{h}.yml" for h in hosts)]:
                if (ctx.root / rel).is_file():
                    writer.add_bytes(f"vars/{rel}", (ctx.root / rel).read_bytes())
            records = [_export(ctx, tree, writer, lives[h], None if taken is None
                               else taken.get((lives[h].project, h), [])) for h in hosts]
            writer.close({
                "domain": domain, "project": tree.project_of(domain), "owner": tree.owner,
                "network": tree.network_of(domain),
                "instances": records, "snapshots_included": taken is not None,
                "anklume_version": __version__, "incus_server_version": server,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": socket.gethostname()})
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def run(ctx: Context) -> int:
    if not (ctx.get("DOMAIN") or ctx.get("I")):
        raise refuse("DOMAIN= or I= is required", "make backup DOMAIN=<domain> (or I=<instance>)")
    tree = ctx.tree()
    scope = ctx.scope()
    snapshots = ctx.flag("SNAPSHOTS") if "SNAPSHOTS" in ctx.values else True
    encrypt = crypt.recipients(ctx.get("ENCRYPT")) if ctx.get("ENCRYPT") else None
    out = _out(ctx)
    found = instances.read(ctx, tree)
    lives: dict[str, Live] = {}
    for h in scope.hosts:  # every instance checked before anything is frozen or written
        inst = tree.instances[h]
        live = found.get((inst.project, h))
        if live is None:
            raise refuse(instances.missing(tree, inst), "nothing to back up")
        why = live.foreign(tree.owner)
        if why:
            raise refuse(f"instance {h} (project {inst.project}) is not this tree's: {why}", "")
        lives[h] = live
    out.mkdir(exist_ok=True)
    server = _server_version(ctx, tree)
    taken = instances.snapshots(ctx, tree) if snapshots else None  # one read for all
    for domain in scope.domains:
        hosts = [h for h in scope.hosts if tree.instances[h].domain == domain]
        started = time.monotonic()
        try:
            path = _one(ctx, tree, domain, hosts, lives, out, encrypt, taken, server)
        except OSError as exc:
            print(f"backup: {domain}: no archive written: {exc}", file=ctx.err)
            return 1
        print(f"backup: {path} ({path.stat().st_size / MiB:.1f} MiB, {len(hosts)} "
              f"instance(s), {time.monotonic() - started:.1f} s"
              f"{', encrypted' if encrypt else ''})", file=ctx.out)
    return 0
