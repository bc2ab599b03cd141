"""The everyday verbs on instances (shell, exec, logs, start, stop, restart, delete, use).

Each acts on declared instances only (I= and DOMAIN= name what the tree declares), in the
instance's project, on the tree's Incus (global.incus_remote). start/stop/restart live in
power.py, logs in logs.py, use in use.py; docs/everyday.md is the user's page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from anklume import colors
from anklume.ops import instances, logs, power, use
from anklume.ops.context import Context
from anklume.ops.instances import LOGIN, PROTECTION
from anklume.ops.problems import refuse

# bash runs it before each prompt: `[domain] ` before whatever prompt the profile set, once.
PROMPT_COMMAND = 'case "$PS1" in *"$ANKLUME_PS1"*) ;; *) PS1="$ANKLUME_PS1$PS1";; esac'


def shell(ctx: Context) -> int:
    """An interactive login shell in the instance, its prompt marked `[domain]` in the
    domain's colour (ADR-090); its exit status."""
    tree, inst = instances.running(ctx, "shell")
    rec = (tree.raw.get("anklume_domains") or {}).get(inst.domain) or {}
    color = rec.get("color_hex") if colors.wanted(sys.stdout.isatty(), os.environ) else None
    mark = colors.prompt(inst.domain, str(color) if color else None)
    return ctx.run(instances.argv(tree, inst, "exec", "--env", f"ANKLUME_PS1={mark}",
                                  "--env", f"PROMPT_COMMAND={PROMPT_COMMAND}", "--", "sh",
                                  "-c", LOGIN))


def exec_(ctx: Context) -> int:
    """CMD as one shell line (sh -c) in the instance; exactly its exit status."""
    tree, inst = instances.running(ctx, "exec")
    command = ctx.get("CMD")
    rc = ctx.run(instances.argv(tree, inst, "exec", "--", "sh", "-c", command))
    if rc:
        print(f"exec: `{command}` exited with status {rc} in {inst.name}", file=ctx.err)
    return rc


def delete(ctx: Context) -> int:
    """Delete one instance of ours (a protected one with FORCE=1), nothing else."""
    inst = instances.one(ctx, "delete")
    tree = ctx.tree()
    live = instances.read(ctx, tree).get((inst.project, inst.name))
    if live is None:
        where = "" if tree.remote == "local" else f" on Incus '{tree.remote}'"
        raise refuse(f"instance {inst.name} does not exist in project {inst.project}{where}",
                     "nothing to delete")
    why = live.foreign(tree.owner)
    if why:
        raise refuse(f"instance {inst.name} (project {inst.project}) is not this tree's: {why}",
                     "make delete removes only instances this description made")
    force = ctx.flag("FORCE")
    if live.protected and not force:
        raise refuse(f"instance {inst.name} is protected ({PROTECTION}=true, ephemeral: false)",
                     f"make delete I={inst.name} FORCE=1 lifts the protection and deletes it")
    if live.protected:
        rc, out = instances.incus(ctx, instances.argv(
            tree, inst, "config set", f"{PROTECTION}=false"))
        if rc:
            print(f"delete: cannot lift the protection of {inst.name}: {out}", file=ctx.err)
            return 1
    rc, out = instances.incus(ctx, instances.argv(tree, inst, "delete", "--force"))
    if rc:
        if live.protected:  # put the protection back as it was: nothing half-done
            before = live.config.get(PROTECTION)
            back = ("config set", f"{PROTECTION}={before}") if before is not None else (
                "config unset", PROTECTION)
            instances.incus(ctx, instances.argv(tree, inst, *back))
        print(f"delete: {inst.name} was not deleted: {out}", file=ctx.err)
        return 1
    lifted = ", its protection lifted first" if live.protected else ""
    print(f"delete: {inst.name} (project {inst.project}) deleted{lifted}; nothing else was "
          "touched", file=ctx.out)
    print(f"delete: infra.yml still declares {inst.name}: the next make apply creates it "
          "again (remove it from infra.yml to keep it gone)", file=ctx.out)
    return 0


def _copy(ctx: Context) -> int:
    from anklume.ops import copy  # its streaming code stays out of every other target
    return copy.run(ctx)


RUNNERS: dict[str, Callable[[Context], int]] = {
    "shell": shell, "exec": exec_, "logs": logs.run, "delete": delete, "use": use.run,
    "start": power.start, "stop": power.stop, "restart": power.restart,
    "copy": lambda ctx: _copy(ctx),
}
