"""`make restore-backup FILE= [KEY=] [AS=] [REMOTE=] [FORCE=1]` (ADR-087, ADR-089,
docs/backups.md).

First the whole archive is read and checked (backup_verify.check): nothing is asked of
Incus before it is known good. The domain (the backup's, or AS=) must be declared in this
tree and applied on the Incus it lands on (this tree's, or REMOTE=): its project, bridge and
profiles exist. When the tree does not declare it, the archive's part of infra.yml (renamed
for AS=) is written next to the archive to be merged by hand, never merged silently.
The archive is read once: its instances' exports go to private temporary files while every
member is checked (`incus import` needs a file it can seek), and are imported only when the
whole archive proved good; an export that lands elsewhere than where it was taken is
edited first (restore_place). With several archives (FILE=<pattern>), the next one is read
and checked while the one before is imported and started (ADR-092); it lands only after.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import yaml

from anklume import yamlload
from anklume.errors import InputError, Problem
from anklume.ops import backup_verify as verify
from anklume.ops import instances
from anklume.ops import restore_place as place
from anklume.ops.context import Context
from anklume.ops.instances import PROTECTION
from anklume.ops.problems import refuse
from anklume.ops.tree import Tree


def renamed(name: str, source: str, domain: str) -> str:
    """NAME of domain SOURCE, restored into DOMAIN: its `<source>-` prefix becomes
    `<domain>-` (a name without that prefix gets it)."""
    if source == domain:
        return name
    return f"{domain}-{name.removeprefix(source + '-')}"


def _renamed_infra(infra: bytes, source: str, domain: str) -> bytes:
    """The backup's part of infra.yml for AS=DOMAIN: the domain and its machines renamed,
    its subnet_id and addresses left for this tree to choose."""
    part = yamlload.plain(infra.decode()) or {}
    rec = (part.get("domains") or {}).get(source)
    if source == domain or not isinstance(rec, dict):
        return infra
    rec.pop("subnet_id", None)
    machines = rec.get("machines") or {}
    was = [f"# {n} had ip {m.pop('ip')} in {source}\n" for n, m in machines.items()
           if isinstance(m, dict) and "ip" in m]
    rec["machines"] = {renamed(str(n), source, domain): m for n, m in machines.items()}
    head = (f"# domain {source} of a backup, renamed {domain} (AS=): give it a subnet_id "
            "free in this tree and its machines an ip in that subnet (or none: DHCP), then "
            "merge it\n" + "".join(was))
    return (head + yaml.safe_dump({"domains": {domain: rec}}, sort_keys=False)).encode()


def _offer(ctx: Context, path: Path, key: Path | None, source: str, domain: str,
           infra: bytes) -> InputError:
    """The archive's infra.yml part written beside it, and the steps to take."""
    stem = path.name.split(".anklume-backup")[0]
    offered = path.with_name(f"{stem}{'' if source == domain else '-as-' + domain}.infra.yml")
    offered.write_bytes(_renamed_infra(infra, source, domain))
    again = " ".join([f"make restore-backup FILE={path}",
                      *(f"{k}={ctx.get(k)}" for k in ("KEY", "AS", "REMOTE")
                        if ctx.get(k))])
    return refuse(f"domain {domain} is not declared in this tree; its part of infra.yml is in "
                  f"{offered}",
                  f"merge it into infra.yml, run make apply DOMAIN={domain} TAGS=networks,"
                  f"projects,profiles (no instances), then {again}")


def _remote(ctx: Context, tree: Tree) -> Tree:
    """The tree aimed at REMOTE= (an Incus remote of this client), when given."""
    remote = ctx.get("REMOTE")
    if not remote or remote == tree.remote:
        return tree
    rc, out = instances.incus(ctx, ["incus", "remote", "list", "--format", "json"])
    known = json.loads(out) if rc == 0 else {}
    if remote not in known:
        raise refuse(f"REMOTE={remote} is not a remote of this Incus client",
                     f"make remote-add REMOTE={remote} TOKEN=<token> trusts it first")
    return dataclasses.replace(tree, remote=remote)


def _targets(ctx: Context, tree: Tree, domain: str, names: list[str]) -> None:
    """NAMES (the instances to import, in DOMAIN) checked against the tree and Incus;
    existing ones deleted first with FORCE=1 (ours only), refused otherwise."""
    project = tree.project_of(domain)
    missing = [n for n in names if n not in tree.domains[domain]]
    if missing:
        raise refuse(f"instance(s) {', '.join(missing)} of the backup are not declared in "
                     f"domain {domain} of this tree", "declare them in infra.yml (the "
                     "backup's part is in its infra.yml member), make sync, then restore")
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


def placements(tree: Tree, manifest: dict[str, Any], domain: str,
               names: dict[str, str]) -> dict[str, place.Placement | None]:
    """Per backed-up name: how its export must be edited, None when it lands where it was
    taken (same name, bridge and owner: imported as it is)."""
    source = str(manifest["domain"])
    as_is = (source == domain and manifest.get("owner") == tree.owner
             and manifest.get("network") == tree.network_of(domain))
    found: dict[str, place.Placement | None] = {}
    for old, new in names.items():
        inst = tree.instances[new]
        found[old] = None if as_is else place.Placement(
            network=tree.network_of(domain), address=inst.ip, owner=tree.owner,
            profiles=inst.profiles, copy=new != old)
    return found


class ImportFailed(Exception):
    """Incus refused an import (the archive itself was good)."""


class Spool:
    """The one pass's consumer: the infra.yml member kept, each instance's chunks appended
    to a private file of its own. Used only once the whole archive has been checked."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.infra = b""
        self.file: IO[bytes] | None = None
        self.name = ""

    def path(self, name: str) -> Path:
        return self.tmp / f"{name}.tar.zst"

    def __call__(self, member: str, chunks: Iterator[bytes]) -> None:
        if member == "infra.yml":
            self.infra = b"".join(chunks)
            return
        prefix, _, _ = member.rpartition(".")
        if not (prefix.startswith("instances/") and prefix.endswith(".tar.zst")):
            return
        name = prefix.removeprefix("instances/").removesuffix(".tar.zst")
        if name != self.name or self.file is None:
            self.close()
            self.name = name
            self.file = self.path(name).open("ab")
        for data in chunks:
            self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Importer:
    """Each checked export into the domain's project, edited first when it lands elsewhere
    than where it was taken."""

    def __init__(self, ctx: Context, tree: Tree, manifest: dict[str, Any], domain: str,
                 names: dict[str, str], spool: Spool) -> None:
        self.ctx, self.tree, self.spool, self.names = ctx, tree, spool, names
        self.project = tree.project_of(domain)
        self.places = placements(tree, manifest, domain, names)
        self.done: list[str] = []

    def __call__(self, record: dict[str, Any]) -> None:
        old = str(record["name"])
        name = self.names[old]
        path = self.spool.path(old)
        placement = self.places[old]
        if placement is not None:
            edited = self.spool.tmp / "placed.tar.zst"
            try:
                place.rewrite(path, edited, placement)
            except (OSError, ValueError) as exc:
                raise ImportFailed(f"cannot prepare {old} for {name}: {exc}") from None
            finally:
                path.unlink()
            path = edited
        rc, out = instances.incus(self.ctx, ["incus", "import", "--project", self.project,
                                             *([self.tree.remote + ":"]
                                               if self.tree.remote != "local" else []),
                                             str(path), name], timeout=1800)
        path.unlink()
        if rc:
            raise ImportFailed(f"incus import of {name} failed: {out}")
        if record.get("running"):
            instances.incus(self.ctx, ["incus", "start", "--project", self.project,
                                       instances.address(self.tree, name)])
        self.done.append(name)
        snaps = ", ".join(record.get("snapshots") or []) or "none"
        moved = f" from {old}" if name != old else ""
        print(f"restore-backup: {name}{moved} imported into project {self.project} "
              f"(snapshots: {snaps}){', started' if record.get('running') else ''}",
              file=self.ctx.err)


def _land(ctx: Context, path: Path, key: Path | None, manifest: dict[str, Any],
          spool: Spool) -> int:
    """The checked archive PATH (its exports in SPOOL) into its domain (or AS=)."""
    tree = ctx.tree()
    source = str(manifest.get("domain"))
    domain = ctx.get("AS") or source
    if domain not in tree.domains:
        raise _offer(ctx, path, key, source, domain, spool.infra)
    tree = _remote(ctx, tree)
    names = {str(i["name"]): renamed(str(i["name"]), source, domain)
             for i in manifest["instances"]}
    _targets(ctx, tree, domain, list(names.values()))
    importer = Importer(ctx, tree, manifest, domain, names, spool)
    try:
        for record in manifest["instances"]:
            importer(record)
    except ImportFailed as exc:
        raise InputError([Problem("make", None, str(path), f"{exc} (imported so far: "
                                  f"{', '.join(importer.done) or 'none'})", "")]) from None
    where = "" if tree.remote == "local" else f" on {tree.remote}"
    print(f"restore-backup: {path}: {len(importer.done)} instance(s) of domain {source} "
          f"restored{f' as {domain}' if domain != source else ''}{where} "
          f"({', '.join(importer.done)}), backed up {manifest.get('created')} on "
          f"{manifest.get('host')}", file=ctx.out, flush=True)
    if any(importer.places.values()):
        print(f"restore-backup: placed on {tree.network_of(domain)} with the declared "
              f"addresses and profiles; make apply DOMAIN={domain} sets the rest infra.yml "
              "declares for them", file=ctx.out, flush=True)
    return 0


def _landed(ctx: Context, path: Path, key: Path | None, manifest: dict[str, Any],
            spool: Spool) -> int:
    """_land, then SPOOL's folder removed (run beside the next archive's check)."""
    try:
        return _land(ctx, path, key, manifest, spool)
    finally:
        shutil.rmtree(spool.tmp, ignore_errors=True)


def _before(exc: InputError, paths: list[Path], n: int) -> InputError:
    """EXC (about archive N of PATHS) saying which archives before it were restored."""
    if not n:
        return exc
    done = f" ({n} archive(s) before it restored: {', '.join(p.name for p in paths[:n])})"
    return InputError([*exc.problems[:-1], dataclasses.replace(
        exc.problems[-1], what=exc.problems[-1].what + done)])


def run(ctx: Context) -> int:
    """Each archive is checked whole before anything of it reaches Incus; the next one is
    checked (read, summed, spooled) while the one before is imported and started."""
    paths, key = verify.inputs(ctx)
    if len(paths) > 1 and ctx.get("AS"):
        raise refuse(f"AS= takes one archive, and FILE={ctx.get('FILE')} names {len(paths)}",
                     "restore them one by one, each with its AS=")
    ctx.tree()  # a tree that was never synced is refused before the archive is read
    with ThreadPoolExecutor(max_workers=1) as pool:
        landing: tuple[int, Future[int]] | None = None  # the archive being imported

        def landed() -> None:
            """The archive being imported, waited for; its refusal raised (as before)."""
            nonlocal landing
            if landing is None:
                return
            n, future = landing
            landing = None
            try:
                future.result()
            except InputError as exc:
                raise _before(exc, paths, n) from None

        for n, path in enumerate(paths):
            spool = Spool(Path(tempfile.mkdtemp(prefix="anklume-restore-")))
            try:
                manifest = verify.check(path, key, spool)  # nothing is created before
            except BaseException as exc:
                spool.close()
                shutil.rmtree(spool.tmp, ignore_errors=True)
                landed()  # an earlier archive's refusal comes first
                if isinstance(exc, InputError):
                    raise _before(exc, paths, n) from None
                raise
            spool.close()
            try:
                landed()
            except BaseException:
                shutil.rmtree(spool.tmp, ignore_errors=True)
                raise
            landing = (n, pool.submit(_landed, ctx, path, key, manifest, spool))
        landed()
    return 0
