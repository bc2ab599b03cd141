"""`make use EXAMPLE=<name> [KEEP=1|DESTROY=1]`: switch the tree to examples/<name>/infra.yml
and show its plan, the steps of examples/README.md in one command.

Before anything changes: the example must render, and the instances the current infra.yml
declares must not exist in Incus, unless KEEP=1 (they stay, as orphans of no tree) or
DESTROY=1 (the destroy play deletes them first, protected ones included). The previous
infra.yml is kept beside it (infra.yml.before-use, or .before-use.N when that one holds
another file), then the tree is rendered with the old domains' files removed
(sync-clean FORCE=1) and the plan is shown.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from anklume.ops import instances, playbooks
from anklume.ops import tree as trees
from anklume.ops.context import Context
from anklume.ops.problems import refuse
from anklume.ops.targets import TARGETS

BACKUP = "infra.yml.before-use"


def examples(root: Path) -> list[str]:
    """The folders of ROOT/examples that hold an infra.yml."""
    folder = root / "examples"
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if (d / "infra.yml").is_file())


def backup_path(root: Path, text: str) -> Path:
    """Where the previous infra.yml (TEXT) goes: a file already holding it, else the first
    free name; an earlier backup with other contents is never overwritten."""
    n = 0
    while True:
        path = root / (BACKUP if n == 0 else f"{BACKUP}.{n}")
        if not path.exists() or path.read_text(encoding="utf-8") == text:
            return path
        n += 1


def _write(path: Path, text: str) -> None:
    """Write PATH whole or not at all (a temp file beside it, renamed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _render(ctx: Context, infra: Path, out: Path) -> str | None:
    """Render INFRA into OUT (a scratch folder); None, or the generator's complaint."""
    proc = subprocess.run([ctx.python, "scripts/generate.py", str(infra), "--output", str(out),
                           "--quiet"], cwd=ctx.root, env=ctx.env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode == 0:
        return None
    lines = (proc.stderr + proc.stdout).strip().splitlines()
    return "; ".join(lines[:3]) or f"scripts/generate.py exited {proc.returncode}"


def existing(ctx: Context) -> list[tuple[str, str]]:
    """(project, name) of the instances the current infra.yml declares that Incus holds
    for its owner; refused when infra.yml does not render."""
    current = ctx.root / "infra.yml"
    if not current.exists():
        return []
    with tempfile.TemporaryDirectory(prefix="anklume-use-") as scratch:
        problem = _render(ctx, current, Path(scratch))
        if problem:
            raise refuse(f"the current infra.yml does not render, so what it has in Incus is "
                         f"unknown: {problem}",
                         "fix it, or give KEEP=1 to switch anyway and leave what exists")
        tree = trees.load(Path(scratch))
    live = instances.read(ctx, tree)
    return sorted((i.project, i.name) for i in tree.instances.values()
                  if (found := live.get((i.project, i.name))) is not None
                  and found.owner == tree.owner)


def _as(ctx: Context, target: str, **values: str) -> Context:
    return Context(TARGETS[target], dict(values), root=ctx.root, out=ctx.out, err=ctx.err)


def run(ctx: Context) -> int:
    name = ctx.get("EXAMPLE")
    names = examples(ctx.root)
    if name not in names:
        raise refuse(f"EXAMPLE={name} is no example",
                     f"examples: {', '.join(names) or 'none (no examples/*/infra.yml)'}")
    keep, destroy = ctx.flag("KEEP"), ctx.flag("DESTROY")
    if keep and destroy:
        raise refuse("KEEP=1 and DESTROY=1 given together",
                     "give one: KEEP=1 leaves the current instances, DESTROY=1 deletes them")
    source = ctx.root / "examples" / name / "infra.yml"
    with tempfile.TemporaryDirectory(prefix="anklume-use-") as scratch:
        problem = _render(ctx, source, Path(scratch))
    if problem:
        raise refuse(f"examples/{name}/infra.yml does not render: {problem}", "")
    found = [] if keep else existing(ctx)
    if found and not destroy:
        listed = ", ".join(n for _, n in found[:6]) + (", ..." if len(found) > 6 else "")
        raise refuse(f"{len(found)} instance(s) of the current infra.yml exist in Incus "
                     f"({listed})",
                     f"make use EXAMPLE={name} DESTROY=1 deletes them first (protected ones "
                     f"too); KEEP=1 leaves them (they become orphans)")
    if found:
        print(f"use: destroying what the current infra.yml declares ({len(found)} "
              "instance(s), protected ones too)", file=ctx.out, flush=True)
        rc = playbooks.destroy(_as(ctx, "destroy", FORCE="1"))
        if rc:
            return rc
        left = existing(ctx)
        if left:
            print(f"use: still in Incus after the destroy: {', '.join(n for _, n in left)}; "
                  "infra.yml was not switched", file=ctx.err)
            return 1
    infra = ctx.root / "infra.yml"
    wanted = source.read_text(encoding="utf-8")
    if infra.exists() and infra.read_text(encoding="utf-8") == wanted:
        print(f"use: infra.yml already is examples/{name}/infra.yml", file=ctx.out)
    else:
        kept = ""
        if infra.exists():
            previous = infra.read_text(encoding="utf-8")
            backup = backup_path(ctx.root, previous)
            if not backup.exists():
                _write(backup, previous)
            kept = f" (the previous one is kept as {backup.name})"
        _write(infra, wanted)
        print(f"use: infra.yml is now examples/{name}/infra.yml{kept}", file=ctx.out,
              flush=True)
    rc = playbooks.sync_clean(_as(ctx, "sync-clean", FORCE="1"))
    if rc:
        return rc
    rc = playbooks.plan(_as(ctx, "plan"))
    print("use: read the plan above, then make apply (make status after it)"
          if rc == 0 else "use: the plan stopped; its lines above say what to change",
          file=ctx.out)
    return rc
