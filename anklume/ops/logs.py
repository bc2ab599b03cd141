"""`make logs I=`: the console log and the instance log of one instance.

Incus hands a running container's console buffer out once (each read returns what is new
since the last one) and appends it to console.log in its log folder; on this host's Incus
that file is read, so every `make logs` shows the whole console history (its last lines).
"""

from __future__ import annotations

import os
from pathlib import Path

from anklume.ops import instances
from anklume.ops.context import Context
from anklume.ops.problems import refuse
from anklume.ops.tree import Instance, Tree

INCUS_LOGS = Path("/var/log/incus")
LAST = 200  # lines of a long log


def console_file(tree: Tree, inst: Instance, base: Path | None = None) -> Path | None:
    """Incus's console.log of INST when this host's Incus keeps it here, readable."""
    if tree.remote != "local":
        return None
    folder = inst.name if inst.project == "default" else f"{inst.project}_{inst.name}"
    path = (base or INCUS_LOGS) / folder / "console.log"
    return path if os.access(path, os.R_OK) else None


def tail(text: str, last: int = LAST) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= last:
        return "\n".join(lines)
    return f"[... {len(lines) - last} earlier lines]\n" + "\n".join(lines[-last:])


def _show(ctx: Context, title: str, rc: int, text: str, empty: str) -> bool:
    """Print one log under TITLE, or say in one line why it is not available."""
    if rc != 0 or not text.strip():
        print(f"== {title}: not available ({text if rc != 0 else empty})", file=ctx.out)
        return False
    print(f"== {title}", file=ctx.out)
    print(tail(text), file=ctx.out, flush=True)
    return True


def console(ctx: Context, tree: Tree, inst: Instance, base: Path | None = None) -> bool:
    rc, out = instances.incus(ctx, instances.argv(tree, inst, "console", "--show-log"),
                              timeout=60)
    title = f"console log of {inst.name} (incus console --show-log)"
    kept = console_file(tree, inst, base) if rc == 0 else None
    if kept is not None:  # the read above has appended what was new to it
        out = kept.read_text(encoding="utf-8", errors="replace")
        title = f"console log of {inst.name} ({kept})"
    return _show(ctx, title, rc, out, "nothing new since it was last read: Incus hands a "
                 "running container's console out once; `incus console --project "
                 f"{inst.project} {inst.name}` attaches to it live")


def own(ctx: Context, tree: Tree, inst: Instance) -> bool:
    rc, out = instances.incus(ctx, instances.argv(tree, inst, "info", "--show-log"), timeout=60)
    if rc == 0:
        _, sep, log = out.partition("\nLog:")
        out = log.strip() if sep else ""
    return _show(ctx, f"instance log of {inst.name} (incus info --show-log)", rc, out,
                 "Incus holds no log for it yet")


def run(ctx: Context) -> int:
    """Both logs; fails when neither is available."""
    inst = instances.one(ctx, "logs")
    tree = ctx.tree()
    if (inst.project, inst.name) not in instances.read(ctx, tree):
        raise refuse(instances.missing(tree, inst), "")
    shown = [console(ctx, tree, inst), own(ctx, tree, inst)]
    return 0 if any(shown) else 1
