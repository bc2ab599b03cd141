"""`make restore-backup FILE= [KEY=] [FORCE=1]` (ADR-087, docs/backups.md).

First the whole archive is read and checked (backup_verify.check): nothing is asked of
Incus before it is known good. The domain must be declared in this tree and applied (its
project, bridge and profiles exist): when the tree does not declare it, the archive's part
of infra.yml is written next to the archive to be merged by hand, never merged silently.
Then a second pass imports each instance into the domain's project, as it comes, through
a private temporary file (`incus import` needs a file it can seek), deleted at once.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from anklume.errors import InputError, Problem
from anklume.ops import backup_archive as archive
from anklume.ops import backup_verify as verify
from anklume.ops import instances
from anklume.ops.context import Context
from anklume.ops.instances import PROTECTION
from anklume.ops.problems import refuse
from anklume.ops.tree import Tree


def _offer(path: Path, key: Path | None, domain: str, infra: bytes) -> InputError:
    """The archive's infra.yml part written beside it, and the steps to take."""
    stem = path.name.split(".anklume-backup")[0]
    offered = path.with_name(f"{stem}.infra.yml")
    offered.write_bytes(infra)
    again = f"make restore-backup FILE={path}" + (f" KEY={key}" if key else "")
    return refuse(f"domain {domain} is not declared in this tree; its part of infra.yml is in "
                  f"{offered}",
                  f"merge it into infra.yml, run make apply DOMAIN={domain} TAGS=networks,"
                  f"projects,profiles (no instances), then {again}")


def _targets(ctx: Context, tree: Tree, manifest: dict[str, Any]) -> list[str]:
    """The instances to import, checked against the tree and Incus; existing ones deleted
    first with FORCE=1 (ours only), refused otherwise."""
    domain = str(manifest["domain"])
    project = tree.project_of(domain)
    names = [str(i["name"]) for i in manifest["instances"]]
    for n in names:
        if n not in tree.domains[domain]:
            raise refuse(f"instance {n} of the backup is not declared in domain {domain} of "
                         "this tree", "declare it in infra.yml (the backup's part is in "
                         "its infra.yml member), make sync, then restore")
    rc, out = instances.incus(ctx, ["incus", "query", instances.address(
        tree, f"/1.0/projects/{project}")])
    if rc:
        raise refuse(f"project {project} of domain {domain} does not exist on Incus "
                     f"'{tree.remote}'", f"make apply DOMAIN={domain} TAGS=networks,projects,"
                     "profiles creates it without the instances")
    found = instances.read(ctx, tree)
    force = ctx.flag("FORCE")
    present = [found[(project, n)] for n in names if (project, n) in found]
    for live in present:
        why = live.foreign(tree.owner)
        if why:
            raise refuse(f"instance {live.name} (project {project}) exists and is not this "
                         f"tree's: {why}", "restore elsewhere, or remove it yourself")
        if not force:
            raise refuse(f"instance {live.name} exists in project {project}",
                         "FORCE=1 deletes it (protected or not) and restores the backup's")
    for live in present:
        where = instances.address(tree, live.name)
        if live.protected:
            instances.incus(ctx, ["incus", "config", "set", "--project", project, where,
                                  f"{PROTECTION}=false"])
        rc, out = instances.incus(ctx, ["incus", "delete", "--force", "--project", project,
                                        where])
        if rc:
            raise refuse(f"cannot delete {live.name} before restoring it: {out}", "")
        print(f"restore-backup: {live.name} deleted (FORCE=1)", file=ctx.err)
    return names


class ImportFailed(Exception):
    """Incus refused an import (the archive itself was good)."""


class Importer:
    """The second pass's consumer: each instance's chunks into a private file, checked
    again against the manifest, imported when its last chunk is in."""

    def __init__(self, ctx: Context, tree: Tree, manifest: dict[str, Any], tmp: Path) -> None:
        self.ctx, self.tree, self.tmp = ctx, tree, tmp
        self.project = tree.project_of(str(manifest["domain"]))
        self.sums = {m["name"]: m["sha256"] for m in manifest["members"]}
        self.records = {f"instances/{i['name']}.tar.zst": i for i in manifest["instances"]}
        self.file: IO[bytes] | None = None
        self.done: list[str] = []

    def __call__(self, name: str, chunks: Iterator[bytes]) -> None:
        prefix, _, index = name.rpartition(".")
        record = self.records.get(prefix)
        if record is None:
            return
        if self.file is None:
            self.file = (self.tmp / "export.tar.zst").open("wb")
        digest = hashlib.sha256()
        for data in chunks:
            digest.update(data)
            self.file.write(data)
        if digest.hexdigest() != self.sums.get(name):
            raise archive.Broken([f"member {name} changed since it was verified"])
        if int(index) == record["chunks"] - 1:
            self.file.close()
            self.file = None
            self._import(record)

    def _import(self, record: dict[str, Any]) -> None:
        name = str(record["name"])
        where = instances.address(self.tree, name)
        path = self.tmp / "export.tar.zst"
        rc, out = instances.incus(self.ctx, ["incus", "import", "--project", self.project,
                                             *([self.tree.remote + ":"]
                                               if self.tree.remote != "local" else []),
                                             str(path), name], timeout=1800)
        path.unlink()
        if rc:
            raise ImportFailed(f"incus import of {name} failed: {out}")
        if record.get("running"):
            instances.incus(self.ctx, ["incus", "start", "--project", self.project, where])
        self.done.append(name)
        snaps = ", ".join(record.get("snapshots") or []) or "none"
        print(f"restore-backup: {name} imported into project {self.project} (snapshots: "
              f"{snaps}){', started' if record.get('running') else ''}", file=self.ctx.err)


def run(ctx: Context) -> int:
    path, key = verify.inputs(ctx)
    tree = ctx.tree()
    infra: dict[str, bytes] = {}

    def keep_infra(name: str, chunks: Iterator[bytes]) -> None:
        if name == "infra.yml":
            infra[name] = b"".join(chunks)

    manifest = verify.check(path, key, keep_infra)  # pass 1: nothing is created before
    domain = str(manifest.get("domain"))
    if domain not in tree.domains:
        raise _offer(path, key, domain, infra.get("infra.yml", b""))
    _targets(ctx, tree, manifest)
    tmp = Path(tempfile.mkdtemp(prefix="anklume-restore-"))
    importer = Importer(ctx, tree, manifest, tmp)
    try:
        verify.check(path, key, importer)  # pass 2: imports as each instance comes
    except (InputError, ImportFailed) as exc:
        done = ", ".join(importer.done) or "none"
        what = "; ".join(p.render() for p in exc.problems) if isinstance(exc, InputError) \
            else str(exc)
        raise InputError([Problem("make", None, str(path), f"{what} (imported so far: {done})",
                                  "")]) from None
    finally:
        if importer.file is not None:
            importer.file.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"restore-backup: {path}: {len(importer.done)} instance(s) of domain {domain} "
          f"restored ({', '.join(importer.done)}), backed up {manifest.get('created')} on "
          f"{manifest.get('host')}", file=ctx.out)
    return 0
