"""``python -m anklume.ops [--check] TARGET``: check the target's variables, take the lock,
run it. Every refusal is one line and exit 2, before anything is done."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from anklume.errors import AnklumeError, guarded
from anklume.ops import makevars
from anklume.ops.problems import refuse
from anklume.ops.targets import FLAGS, SCOPE, TARGETS, VARIABLES, Target, accepts


def _strict(environ: dict[str, str]) -> bool:
    """Whether the command line is the user's: a make started by another make (soak,
    up) inherits its parent's variables, which are not addressed to it."""
    level = environ.get("MAKELEVEL", "")
    return not level.isdigit() or int(level) <= 1


def check(target: Target, environ: dict[str, str]) -> dict[str, str]:
    """The variables TARGET reads, checked; refuses every other one the user typed."""
    typed, values = makevars.given(environ.get("MAKEFLAGS"), environ, target.variables)
    if _strict(environ):
        for name in sorted(typed):
            if not accepts(target, name):
                reads = ", ".join(f"{v}=" for v in target.variables) or "no variable"
                raise refuse(f"{name}= is not read here",
                             f"it reads {reads} (make help)")
    values = {k: v for k, v in values.items() if accepts(target, k)}
    for name in target.required:
        if not values.get(name):
            raise refuse(f"{name}= is required", f"{name}: {VARIABLES.get(name, '')}")
    for name in FLAGS & values.keys():
        makevars.flag(name, values[name])
    named = [v for v in SCOPE if v in values]
    if "PRUNE" in values and makevars.flag("PRUNE", values["PRUNE"]) and named:
        raise refuse(f"PRUNE=1 cannot be combined with {named[0]}=",
                     "pruning removes what infra.yml no longer declares anywhere, so it needs "
                     "the whole description: run make apply PRUNE=1 without a scope")
    return values


def _runner(name: str) -> Callable[..., int]:
    from anklume.ops import playbooks, verbs
    runners: dict[str, Callable[..., int]] = {**playbooks.RUNNERS, **verbs.RUNNERS}
    if name in ("disp", "disp-clean"):
        from anklume.ops import disp
        return disp.run if name == "disp" else disp.clean
    if name in ("gui", "gui-list", "gui-stop"):
        from anklume.ops import gui
        return {"gui": gui.run, "gui-list": gui.show, "gui-stop": gui.stop}[name]
    if name == "clip":
        from anklume.ops import clip
        return clip.run
    if name == "rollback":
        from anklume.ops import rollback
        return rollback.run
    if name in ("backup", "backup-verify", "restore-backup"):
        from anklume.ops import backup, backup_verify, restore
        return {"backup": backup.run, "backup-verify": backup_verify.run,
                "restore-backup": restore.run}[name]
    if name == "doctor":
        from anklume.ops import doctor
        return doctor.run
    if name == "graph":
        from anklume.ops import graph
        return graph.run
    if name not in runners:
        raise refuse(f"make {name} has no runner", "")
    return runners[name]


def run(argv: Sequence[str]) -> int:
    """Run the target; a refusal names it (make apply: ...)."""
    try:
        return _run(list(argv))
    except AnklumeError as exc:
        name = next((a for a in argv if not a.startswith("-")), "")
        if name:
            exc.problems = tuple(replace(p, file=f"make {name}") if p.file == "make" else p
                                 for p in exc.problems)
        raise


def _run(args: list[str]) -> int:
    check_only = bool(args) and args[0] == "--check"
    if check_only:
        args = args[1:]
    if not args or args[0] == "help":
        from anklume.ops.help import text
        sys.stdout.write(text())
        return 0
    name = args[0]
    if name not in TARGETS:
        raise refuse(f"unknown target {name}", "make help lists them")
    target = TARGETS[name]
    if check_only:
        check(target, dict(os.environ))
        return 0
    from anklume.ops.context import Context
    ctx = Context(target, {})
    if target.warm:
        ctx.warm_playbook()  # first of all: Ansible imports while the rest runs (ADR-083)
    try:
        ctx.values = check(target, dict(os.environ))
        from anklume.ops import lock
        runner = _runner(name)
        if not target.locks:
            return runner(ctx)
        wait = makevars.flag("WAIT", ctx.values.get("WAIT", ""))
        from anklume.ops.tree import lock_key
        remote, owner = lock_key(ctx.root, ctx.infra)
        with lock.held(remote, owner, f"make {name}", wait=wait):
            return runner(ctx)
    finally:
        ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(lambda: run(sys.argv[1:] if argv is None else argv),
                   "stopped; what ran so far is reported above")
