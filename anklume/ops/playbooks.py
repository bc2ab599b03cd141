"""The targets that run the generator and Ansible: sync, plan, apply, destroy, snapshots,
status, nftables. Each turns its checked variables into one command line."""

from __future__ import annotations

import json
from collections.abc import Callable

from anklume.ops.context import Context
from anklume.ops.problems import refuse
from anklume.ops.scope import Scope


def _extra(variables: dict[str, object]) -> list[str]:
    return ["-e", json.dumps(variables, sort_keys=True)] if variables else []


def parallel(ctx: Context) -> dict[str, object]:
    value = ctx.get("PARALLEL")
    if not value:
        return {}
    if not value.isdigit() or int(value) < 1:
        raise refuse(f"PARALLEL={value} is not a positive number", "e.g. PARALLEL=4")
    return {"anklume_incus_parallel": int(value)}


def limit(scope: Scope) -> list[str]:
    if scope.everything:
        return []
    if not scope.hosts:
        raise refuse(f"{', '.join(scope.domains)} declare no machines", "nothing to act on")
    return ["--limit", ",".join(scope.hosts)]


def _apply_vars(ctx: Context) -> dict[str, object]:
    found: dict[str, object] = dict(parallel(ctx))
    if "PRUNE" in ctx.target.variables and ctx.flag("PRUNE"):
        found["anklume_prune"] = True
    if "FULL" in ctx.target.variables and ctx.flag("FULL"):
        found["anklume_state_probe"] = False
    return found


def images_on_remote(ctx: Context) -> int:
    """The declared images put on a remote Incus host (scripts/remote_image.py) before an
    apply; with the local Incus there is nothing to put, so no process is started."""
    if ctx.tree().remote == "local":
        return 0
    return ctx.run([ctx.python, "scripts/remote_image.py"])


def sync(ctx: Context) -> int:
    return ctx.sync()


def sync_dry(ctx: Context) -> int:
    return ctx.sync("--dry-run")


def sync_clean(ctx: Context) -> int:
    return ctx.sync("--clean-orphans", *(["--force"] if ctx.flag("FORCE") else []))


def _apply(tags: str) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        variables = _apply_vars(ctx)
        rc = ctx.sync()
        if rc:
            return rc
        scope = ctx.scope()
        args = limit(scope)
        chosen = tags or ctx.get("TAGS")
        rc = images_on_remote(ctx)
        if rc:
            return rc
        rc = ctx.playbook("site.yml", *(["--tags", chosen] if chosen else []), *args,
                          *_extra(variables))
        if rc == 0 and not scope.by_instance and _allow_disposables(ctx, scope.domains):
            from anklume.ops import disp
            disp.refill(ctx, scope.domains)
        return rc
    return run


def _allow_disposables(ctx: Context, domains: tuple[str, ...]) -> bool:
    """Whether one of DOMAINS allows disposables: only then does an apply load make disp's
    code, to refill their ready pools (ADR-084)."""
    records = ctx.tree().raw.get("anklume_domains") or {}
    return any((records.get(d) or {}).get("disposables") for d in domains)


apply = _apply("")
apply_infra = _apply("infra")
apply_provision = _apply("provision")


def apply_llm(ctx: Context) -> int:
    variables = _apply_vars(ctx)
    rc = ctx.sync("--quiet")
    if rc:
        return rc
    rc = images_on_remote(ctx)
    if rc:
        return rc
    hosts = ctx.capture([ctx.python, "scripts/llm_hosts.py"])
    if hosts is None:
        return 2
    return ctx.playbook("site.yml", "--limit", hosts, *_extra(variables))


def plan(ctx: Context) -> int:
    variables = _apply_vars(ctx)
    rc = ctx.sync("--quiet")
    if rc:
        return rc
    args = limit(ctx.scope())
    return ctx.playbook("site.yml", "--check", "--diff", "--tags", ctx.get("TAGS") or "infra",
                        *args, *_extra(variables))


def destroy(ctx: Context) -> int:
    variables: dict[str, object] = dict(parallel(ctx))
    if ctx.flag("FORCE"):
        variables["anklume_force"] = True
    rc = ctx.sync("--quiet")
    if rc:
        return rc
    scope = ctx.scope()
    if scope.by_instance:
        # Only these instances: their domain's project, profiles and bridge stay.
        variables["anklume_destroy_instances_only"] = True
    else:
        from anklume.ops import disp
        disp.remove(ctx, scope.domains)  # throwaway: they would keep the project from going
    return ctx.playbook("site.yml", "--tags", "destroy", *limit(scope), *_extra(variables))


def _snapshots(action: str) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        variables: dict[str, object] = {"incus_snapshots_action": action, **parallel(ctx)}
        if ctx.get("NAME"):
            variables["incus_snapshots_name"] = ctx.get("NAME")
        if "FORCE" in ctx.target.variables and ctx.flag("FORCE"):
            variables["incus_snapshots_force"] = True
        if action in ("create", "restore"):
            rc = ctx.sync("--quiet")
            if rc:
                return rc
        scope = ctx.scope()
        if scope.by_instance:
            variables["incus_snapshots_instance"] = ",".join(scope.hosts)
        elif scope.named:
            variables["incus_snapshots_domain"] = ",".join(scope.domains)
        return ctx.playbook("snapshot.yml", *_extra(variables))
    return run


snapshot = _snapshots("create")
restore = _snapshots("restore")
snapshot_delete = _snapshots("delete")
snapshot_list = _snapshots("list")


def status(ctx: Context) -> int:
    scope = ctx.scope()
    only = [] if scope.everything else ["--hosts", ",".join(scope.hosts)]
    rc = ctx.run([ctx.python, "scripts/status.py", str(ctx.root), *only])
    if rc == 0 and not scope.by_instance:
        from anklume.ops import disp
        disp.status(ctx, scope.domains)
    return rc


def nftables(ctx: Context) -> int:
    variables: dict[str, object] = {}
    if ctx.flag("BOOT"):
        variables["incus_nftables_boot"] = True
    if ctx.get("MODE"):
        variables["incus_nftables_mode"] = ctx.get("MODE")
    rc = ctx.sync()
    return rc or ctx.playbook("nftables.yml", *_extra(variables))


def nftables_deploy(ctx: Context) -> int:
    args = ["--install-boot"] if ctx.flag("BOOT") else []
    source = ctx.get("FROM")
    if source and source != "admin":
        raise refuse(f"FROM={source} is not a source of rules", "FROM=admin, or no FROM")
    if source:
        args.append("--from-admin")
    if ctx.get("NFT_FILE"):
        args.append(ctx.get("NFT_FILE"))
    return ctx.run(["env", f"PYTHON={ctx.python}", "bash", "scripts/deploy-nftables.sh",
                    *args])


def remote_image(ctx: Context) -> int:
    rc = ctx.sync("--quiet")
    return rc or ctx.run([ctx.python, "scripts/remote_image.py"])


def up(ctx: Context) -> int:
    """make up (host and image are its make prerequisites): sync, apply, status."""
    return ctx.run(["bash", "scripts/up.sh", ctx.infra])


RUNNERS: dict[str, Callable[[Context], int]] = {
    "up": up, "sync": sync, "sync-dry": sync_dry, "sync-clean": sync_clean,
    "apply": apply, "apply-infra": apply_infra, "apply-provision": apply_provision,
    "apply-llm": apply_llm, "plan": plan, "destroy": destroy,
    "snapshot": snapshot, "restore": restore, "snapshot-delete": snapshot_delete,
    "snapshot-list": snapshot_list, "status": status,
    "nftables": nftables, "nftables-deploy": nftables_deploy, "remote-image": remote_image,
}
