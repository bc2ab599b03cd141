"""`make disp` and `make disp-clean` (ADR-084, docs/disposables.md).

`make disp DOMAIN=d [CMD=] [IMAGE=] [TTL=] [FILE=] [OUT=]`: a throwaway container in domain
d's project, on its bridge, under its isolation, at an address of its disposable range. A
ready one is taken when the domain keeps some (``preload``), else one is launched. The
reaper is started before anything runs in it; the client deletes it at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from anklume import checks
from anklume.disposables import seconds
from anklume.ops import disp_live as live
from anklume.ops import disp_pool, disp_reaper
from anklume.ops.context import Context
from anklume.ops.instances import LOGIN
from anklume.ops.problems import refuse
from anklume.ops.tree import Tree

# Where FILE= lands and what OUT= brings back, inside the disposable.
INCOMING = "/root/Incoming/host"
OUTGOING = "/root/Outgoing"


def _domain(ctx: Context, tree: Tree) -> live.Domain:
    name = ctx.get("DOMAIN").strip()
    if not name:
        raise refuse("DOMAIN= is required", "make disp DOMAIN=<a domain that allows them>")
    if any(c in name for c in ",*?[") or name in tree.templates:
        raise refuse(f"DOMAIN={name} names more than one domain: make disp takes one",
                     "name one domain")
    if name not in tree.domains:
        guess = checks.did_you_mean(name, tree.domains)
        raise refuse(f"unknown domain {name}",
                     f"did you mean {guess}?" if guess else "make status lists the domains")
    dom = live.domain_of(tree, name)
    if dom is None:
        raise refuse(f"domain {name} does not allow disposables",
                     f"add `disposables: true` to domains.{name} in infra.yml, then make apply")
    return dom


def _ttl(ctx: Context, dom: live.Domain) -> int:
    text = ctx.get("TTL") or dom.ttl
    ttl = seconds(text)
    if ttl is None:
        raise refuse(f"TTL={text} is not a duration", "write e.g. TTL=90s, 30m, 1h30m or 2d")
    return ttl


def _paths(ctx: Context) -> tuple[Path | None, Path | None]:
    file = Path(ctx.get("FILE")).expanduser() if ctx.get("FILE") else None
    if file is not None and not file.exists():
        raise refuse(f"FILE={ctx.get('FILE')} is not a file or a directory here",
                     "name an existing file or directory of this host")
    out = Path(ctx.get("OUT")).expanduser() if ctx.get("OUT") else None
    if out is not None and not out.is_dir():
        raise refuse(f"OUT={ctx.get('OUT')} is not a directory here",
                     "name an existing directory to receive what the disposable leaves in "
                     f"{OUTGOING}")
    return file, out


def _start(ctx: Context, tree: Tree, dom: live.Domain, image: str, ttl: int) -> str:
    """A ready disposable claimed, or a new one launched; ready to run a command."""
    started = time.monotonic()
    name = live.claim(ctx, tree, dom, image, ttl) if dom.preload else None
    how = "ready"
    if name is None:
        how = "new"
        print(f"disp: starting a disposable in domain {dom.name} ({image})...", file=ctx.err)
        name = live.create(ctx, tree, dom, image, live.USED, ttl)
    disp_reaper.spawn(ctx, {"do": "watch", "project": dom.project, "name": name,
                            "client": live.client_id(), "deadline": time.time() + ttl,
                            "refill": dom.name if dom.preload else ""})
    up = live.wait_address(ctx, tree, dom.project, name, dom.address_of(name))
    if up == "gone":
        raise refuse(f"disposable {name} was deleted before it got its address: its TTL "
                     f"({ttl} s) passed", "give it a longer TTL=")
    if up != "up":
        live.delete(ctx, tree, dom.project, name)
        raise refuse(f"disposable {name} got no address within {live.BOOT_WAIT:.0f} s",
                     "make doctor checks the host")
    print(f"disp: {name} ({how}, {dom.address_of(name)}, TTL {ttl} s) in "
          f"{time.monotonic() - started:.1f} s", file=ctx.err)
    return name


def run(ctx: Context) -> int:
    tree = ctx.tree()
    dom = _domain(ctx, tree)
    ttl = _ttl(ctx, dom)
    image = ctx.get("IMAGE") or dom.image
    file, out = _paths(ctx)
    command = ctx.get("CMD")
    name = _start(ctx, tree, dom, image, ttl)
    from anklume.ops import transfer  # only here: an apply imports this module too
    try:
        env: list[str] = []
        here = transfer.Endpoint(name, dom.project, tree.remote)
        if file is not None:
            landed = transfer.push_from_host(file, here, INCOMING).landed
            print(f"disp: {file} copied to {landed} (FILE)", file=ctx.err)
            env += ["--env", f"FILE={landed}"]
        if out is not None:
            ctx.run(live.argv(tree, dom.project, name, "exec", "--", "mkdir", "-p", OUTGOING))
            env += ["--env", f"OUT={OUTGOING}"]
        shell = ["sh", "-c", command] if command else ["sh", "-c", LOGIN]
        rc = ctx.run(live.argv(tree, dom.project, name, "exec", *env,
                               *([] if command else ["-t"]), "--", *shell))
        if out is not None:
            report = transfer.pull_to_host(here, OUTGOING, out)
            print(f"disp: {OUTGOING} copied to {report.landed} ({len(report.files)} files, "
                  f"{report.total} bytes)", file=ctx.err)
    finally:
        live.delete(ctx, tree, dom.project, name)
    if command and rc:
        print(f"disp: `{command}` exited with status {rc} in {name} (deleted)", file=ctx.err)
    return rc


def refill(ctx: Context, domains: tuple[str, ...]) -> None:
    """After an apply: the ready pools of DOMAINS that keep some are brought to their
    preload by the reaper, detached (nothing is read when no domain keeps any)."""
    tree = ctx.tree()
    keep = [d for d in domains if (dom := live.domain_of(tree, d)) is not None and dom.preload]
    if keep:
        disp_reaper.spawn(ctx, {"do": "refill", "domains": keep})
        print(f"disp: ready disposables of {', '.join(keep)} are prepared in the background",
              file=ctx.out)


def remove(ctx: Context, domains: tuple[str, ...]) -> None:
    """Delete every disposable of DOMAINS (`make destroy` of the domains: a disposable is
    never protected, and a project that holds one cannot be deleted)."""
    tree = ctx.tree()
    projects = {tree.project_of(d) for d in domains}
    for d in live.read(ctx, tree):
        if d.project in projects and live.delete(ctx, tree, d.project, d.name):
            print(f"destroy: disposable {d.name} (project {d.project}) deleted", file=ctx.out)


def status(ctx: Context, domains: tuple[str, ...]) -> None:
    """The disposables of DOMAINS (`make status`), when there are some."""
    tree = ctx.tree()
    projects = {tree.project_of(d) for d in domains}
    found = [d for d in live.read(ctx, tree) if d.project in projects]
    if not found:
        return
    now = time.time()
    print("\nDISPOSABLE            PROJECT      STATE    STATUS   ENDS IN", file=ctx.out)
    for d in found:
        ends = f"{max(0, int(d.expires - now))} s" if d.expires is not None else "-"
        print(f"{d.name:<21} {d.project:<12} {d.state:<8} {d.status:<8} {ends}", file=ctx.out)


def _surplus(tree: Tree, d: live.Disposable) -> str | None:
    """Why a ready one is not wanted any more, or None."""
    domain = next((n for n in tree.domains if tree.project_of(n) == d.project), "")
    dom = live.domain_of(tree, domain)
    if dom is None or not dom.preload:
        return f"domain {domain or d.project} keeps no ready disposables any more"
    if d.config.get(live.IMAGE) != dom.image:
        return f"it was made from another image than {dom.image}"
    return None


def clean(ctx: Context) -> int:
    """Delete the disposables no `make disp` serves any more (FORCE=1: all of them, the
    ready ones and the ones in use too)."""
    tree = ctx.tree()
    force = ctx.flag("FORCE")
    projects = None
    if ctx.get("DOMAIN"):
        projects = {_domain(ctx, tree).project}
    now = time.time()
    removed = kept = 0
    for d in live.read(ctx, tree):
        if projects is not None and d.project not in projects:
            continue
        why = "FORCE=1" if force else (
            _surplus(tree, d) if d.state == live.READY else disp_pool.leftover(d, now))
        if why is None:
            kept += 1
            continue
        if live.delete(ctx, tree, d.project, d.name):
            removed += 1
            print(f"disp-clean: {d.name} (project {d.project}) deleted: {why}", file=ctx.out)
    print(f"disp-clean: {removed} deleted, {kept} kept (in use or ready; FORCE=1 deletes "
          "them too)", file=ctx.out)
    return 0
