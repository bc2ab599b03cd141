"""`make backup DOMAIN=|I= [OUT=] [ENCRYPT=] [SNAPSHOTS=0]` (ADR-087, docs/backups.md).

One archive per domain in scope: each instance's `incus export` (zstd, its snapshots unless
SNAPSHOTS=0) taken while the instance is frozen, so what is read is one instant of its
disk, the domain's part of infra.yml, its generated and hand-written vars, and the manifest.
Written under a hidden temporary name in OUT and renamed at the very end, through `age` when
ENCRYPT= names recipients: an interrupted backup leaves no file with the final name.
The next instance's export is started as soon as the current one's first bytes arrive, so
Incus makes it while the current one is summed and written (ADR-092).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


class _Export:
    """One instance's `incus export` under way: the instance frozen first when it runs (so
    what is read is one instant of its disk), resumed by finish() or abort()."""

    def __init__(self, ctx: Context, tree: Tree, live: Live, snapshots: list[str] | None
                 ) -> None:
        self.ctx, self.tree, self.live = ctx, tree, live
        self.record: dict[str, Any] = {"name": live.name, "running": live.running,
                                       "snapshots": snapshots or []}
        self.started = time.monotonic()
        self.frozen = False
        if live.running:
            rc, out = instances.incus(ctx, ["incus", "pause", "--project", live.project,
                                            instances.address(tree, live.name)])
            if rc:
                raise OSError(f"cannot freeze {live.name} for a consistent export: {out}")
            self.frozen = True
        argv = ["incus", "export", "--project", live.project,
                instances.address(tree, live.name), "-", "--compression", "zstd", "--quiet",
                *([] if snapshots is not None else ["--instance-only"])]
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish/abort)
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.errors,
                                         stdin=subprocess.DEVNULL, env=ctx.env())
        except OSError:
            self.errors.close()
            self._resume()
            raise

    def _resume(self) -> None:
        if self.frozen:
            self.frozen = False
            instances.incus(self.ctx, ["incus", "resume", "--project", self.live.project,
                                       instances.address(self.tree, self.live.name)])

    def finish(self) -> None:
        """Once its output was read to the end: its exit checked, the instance resumed."""
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        rc = self.proc.wait()
        self._resume()
        self.errors.seek(0)
        why = self.errors.read().decode(errors="replace").strip().removeprefix("Error: ")
        self.errors.close()
        if rc:
            raise OSError(f"incus export of {self.live.name} failed: {why}")

    def abort(self) -> None:
        """Stopped wherever it is (nothing if it finished), the instance resumed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()
        self._resume()


class _Exports:
    """The exports of the run, in the order they are written. The next one is started
    (frozen, `incus export` under way) as soon as the current one's first bytes arrive:
    Incus makes it while the current one is summed and written, instead of after. A start
    that fails is reported when its turn comes, for its own archive."""

    def __init__(self, ctx: Context, tree: Tree, lives: dict[str, Live],
                 taken: dict[tuple[str, str], list[str]] | None, order: list[str]) -> None:
        self.ctx, self.tree, self.lives, self.taken, self.order = ctx, tree, lives, taken, order
        self.started: dict[str, _Export | OSError] = {}

    def _start(self, host: str) -> None:
        if host in self.started:
            return
        live = self.lives[host]
        snapshots = None if self.taken is None else self.taken.get((live.project, host), [])
        try:
            self.started[host] = _Export(self.ctx, self.tree, live, snapshots)
        except OSError as exc:
            self.started[host] = exc

    def take(self, host: str) -> _Export:
        self._start(host)
        found = self.started[host]
        if isinstance(found, OSError):
            raise found
        return found

    def after(self, host: str) -> None:
        """The export after HOST's started."""
        at = self.order.index(host) + 1
        if at < len(self.order):
            self._start(self.order[at])

    def close(self) -> None:
        """Every export still under way stopped, its instance resumed (an error, Ctrl-C)."""
        for found in self.started.values():
            if isinstance(found, _Export):
                found.abort()


def _export(ctx: Context, writer: archive.Writer, exports: _Exports, host: str
            ) -> dict[str, Any]:
    """HOST's export into WRITER (taken frozen when it runs); its manifest record."""
    export = exports.take(host)
    print(f"backup: {host}: exporting{' (frozen meanwhile)' if export.frozen else ''}...",
          file=ctx.err, flush=True)
    assert export.proc.stdout is not None
    try:
        chunks, size = writer.add_stream(f"instances/{host}.tar.zst", export.proc.stdout,
                                         first=lambda: exports.after(host))
    except BaseException:
        export.abort()
        raise
    export.finish()
    print(f"backup: {host}: {size / MiB:.1f} MiB in {chunks} chunk(s), "
          f"{time.monotonic() - export.started:.1f} s", file=ctx.err, flush=True)
    return {**export.record, "chunks": chunks, "size": size}


def _one(ctx: Context, tree: Tree, domain: str, hosts: list[str], exports: _Exports,
         out: Path, encrypt: list[str] | None, snapshots: bool, server: str) -> Path:
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
            records = [_export(ctx, writer, exports, h) for h in hosts]
            writer.close({
                "domain": domain, "project": tree.project_of(domain), "owner": tree.owner,
                "network": tree.network_of(domain),
                "instances": records, "snapshots_included": snapshots,
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
    with ThreadPoolExecutor(max_workers=2) as pool:  # three reads of Incus at once
        server = pool.submit(_server_version, ctx, tree)
        taken = pool.submit(instances.snapshots, ctx, tree) if snapshots else None
        found = instances.read(ctx, tree)
        lives: dict[str, Live] = {}
        for h in scope.hosts:  # every instance checked before anything is frozen or written
            inst = tree.instances[h]
            live = found.get((inst.project, h))
            if live is None:
                raise refuse(instances.missing(tree, inst), "nothing to back up")
            why = live.foreign(tree.owner)
            if why:
                raise refuse(f"instance {h} (project {inst.project}) is not this tree's: "
                             f"{why}", "")
            lives[h] = live
        out.mkdir(exist_ok=True)
        version = server.result()
        names = taken.result() if taken is not None else None  # one read for all
    groups = [(d, [h for h in scope.hosts if tree.instances[h].domain == d])
              for d in scope.domains]
    exports = _Exports(ctx, tree, lives, names, [h for _, hosts in groups for h in hosts])
    try:
        for domain, hosts in groups:
            started = time.monotonic()
            try:
                path = _one(ctx, tree, domain, hosts, exports, out, encrypt, snapshots, version)
            except OSError as exc:
                print(f"backup: {domain}: no archive written: {exc}", file=ctx.err)
                return 1
            print(f"backup: {path} ({path.stat().st_size / MiB:.1f} MiB, {len(hosts)} "
                  f"instance(s), {time.monotonic() - started:.1f} s"
                  f"{', encrypted' if encrypt else ''})", file=ctx.out)
    finally:
        exports.close()
    return 0
