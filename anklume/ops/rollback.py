"""`make rollback [DOMAIN=|I=]`: each instance in scope back to the newest snapshot an apply
took before changing it (``global.snapshot_before_apply``, ADR-088).

The snapshot holds the instance's files and its Incus config as they were; infra.yml still
says what the apply made of them, so the next `make apply` does it again unless infra.yml is
changed back first (the docs say so, and so does the last line here).
"""

from __future__ import annotations

from anklume.ops.context import Context
from anklume.ops.instances import address, incus, snapshots

# The names an apply gives them (incus_instance's PRE_APPLY, pinned by test_one_home.py).
PRE_APPLY = "anklume-pre-apply-"


def newest(names: list[str]) -> str | None:
    """The newest pre-apply snapshot among NAMES (their UTC time sorts them)."""
    taken = sorted(n for n in names if n.startswith(PRE_APPLY))
    return taken[-1] if taken else None


def run(ctx: Context) -> int:
    tree = ctx.tree()
    scope = ctx.scope()
    restored = failed = 0
    taken = snapshots(ctx, tree)  # every instance's, in one read
    for host in scope.hosts:
        inst = tree.instances[host]
        where = address(tree, inst.name)
        snap = newest(taken.get((inst.project, inst.name), []))
        if snap is None:
            print(f"rollback: {inst.name}: no pre-apply snapshot (nothing to take back; "
                  "global.snapshot_before_apply takes them)", file=ctx.out)
            continue
        rc, out = incus(ctx, ["incus", "snapshot", "restore", "--project", inst.project,
                              where, snap])
        if rc:
            failed += 1
            print(f"rollback: {inst.name}: {snap} was not restored: {out}", file=ctx.err)
            continue
        restored += 1
        print(f"rollback: {inst.name} is back to {snap}", file=ctx.out)
    print(f"rollback: {restored} restored, {failed} failed; infra.yml still declares the "
          "change: put it back (git revert) before the next make apply, which would make it "
          "again", file=ctx.out)
    return 1 if failed else 0
