"""What Incus holds under the tree's declared names, read in one query, and the argv of the
`incus` commands the everyday verbs run (on the tree's remote, in the instance's project).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anklume.ops.context import Context
from anklume.ops.problems import refuse
from anklume.ops.tree import Instance, Tree

MANAGED = "user.anklume.managed"
OWNER = "user.anklume.owner"
PROTECTION = "security.protection.delete"
# The login shell: bash where the image has it (Debian does), else sh.
LOGIN = "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"


@dataclass(frozen=True)
class Live:
    """One instance as Incus reports it."""

    name: str
    project: str
    status: str
    config: dict[str, str] = field(default_factory=dict)
    expanded: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @property
    def protected(self) -> bool:
        return (self.expanded or self.config).get(PROTECTION) == "true"

    @property
    def owner(self) -> str | None:
        """The anklume owner it is marked with; None without the managed marker."""
        if self.config.get(MANAGED) != "true":
            return None
        return self.config.get(OWNER, "")

    def foreign(self, owner: str) -> str | None:
        """Why it is not ours to act on (one phrase), or None."""
        theirs = self.owner
        if theirs is None:
            return f"it has no {MANAGED}=true marker (not made by anklume)"
        if theirs != owner:
            return f"it belongs to anklume project '{theirs}', not '{owner}'"
        return None


def incus(ctx: Context, argv: Sequence[str], timeout: float = 600) -> tuple[int, str]:
    """Run ARGV (an incus command line, captured); (its exit status, its output or its
    error, stripped)."""
    try:
        proc = subprocess.run(list(argv), cwd=ctx.root, env=ctx.env(), capture_output=True,
                              text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"`{' '.join(argv[:2])} ...` did not end within {timeout:.0f} s"
    text = proc.stdout if proc.returncode == 0 else (proc.stderr or proc.stdout)
    return proc.returncode, text.strip().removeprefix("Error: ")


def address(tree: Tree, name: str) -> str:
    """NAME on the tree's Incus: `remote:name`, or plain on this host's (local)."""
    return name if tree.remote == "local" else f"{tree.remote}:{name}"


def argv(tree: Tree, inst: Instance, verb: str, *rest: str) -> list[str]:
    """`incus VERB --project P [remote:]NAME REST...` (VERB: one or more words)."""
    return ["incus", *verb.split(), "--project", inst.project, address(tree, inst.name), *rest]


def listing(ctx: Context, tree: Tree, recursion: int = 1,
            project: str | None = None) -> list[dict[str, Any]]:
    """The instances of PROJECT (default every project) of the tree's Incus, in one query
    (recursion 2 adds their snapshots and state)."""
    where = f"project={project}" if project else "all-projects=true"
    url = address(tree, f"/1.0/instances?{where}&recursion={recursion}")
    rc, out = incus(ctx, ["incus", "query", url], timeout=120)
    if rc != 0:
        hint = "" if tree.remote == "local" else (
            f" (a remote: trust it with make remote-add REMOTE={tree.remote} TOKEN=<token>)")
        raise refuse(f"cannot read the instances of Incus '{tree.remote}': {out}{hint}",
                     "make doctor says what is wrong with this host")
    try:
        items: list[dict[str, Any]] = json.loads(out or "[]") or []
    except ValueError as exc:
        raise refuse(f"Incus '{tree.remote}' answered something that is not JSON: {exc}",
                     "") from None
    return items


def read(ctx: Context, tree: Tree) -> dict[tuple[str, str], Live]:
    """Every instance of every project of the tree's Incus, keyed by (project, name)."""
    found: dict[tuple[str, str], Live] = {}
    for item in listing(ctx, tree):
        live = Live(name=str(item["name"]), project=str(item.get("project") or "default"),
                    status=str(item.get("status") or ""),
                    config={str(k): str(v) for k, v in (item.get("config") or {}).items()},
                    expanded={str(k): str(v)
                              for k, v in (item.get("expanded_config") or {}).items()})
        found[(live.project, live.name)] = live
    return found


def snapshots(ctx: Context, tree: Tree) -> dict[tuple[str, str], list[str]]:
    """Every instance's snapshot names, oldest first, keyed by (project, name): one query."""
    return {(str(i.get("project") or "default"), str(i["name"])):
            [str(s["name"]).rsplit("/", 1)[-1] for s in i.get("snapshots") or []]
            for i in listing(ctx, tree, recursion=2)}


def one(ctx: Context, verb: str) -> Instance:
    """The one declared instance I= names; a list or a pattern is refused."""
    value = ctx.get("I").strip()
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) > 1:
        raise refuse(f"I={value} names {len(parts)} instances: make {verb} takes one",
                     f"run make {verb} once per instance")
    if any(c in value for c in "*?["):
        raise refuse(f"I={value} is a pattern: make {verb} takes one instance by its name",
                     "name it exactly (make status lists them)")
    scope = ctx.scope()
    return ctx.tree().instances[scope.hosts[0]]


def missing(tree: Tree, inst: Instance) -> str:
    where = "" if tree.remote == "local" else f" on Incus '{tree.remote}'"
    return (f"instance {inst.name} does not exist in project {inst.project}{where}: "
            "make apply creates it")


def ours_and_running(ctx: Context, tree: Tree, verb: str, *wanted: Instance) -> None:
    """Refused unless each of WANTED exists, is this tree's and runs (one bulk read)."""
    live = read(ctx, tree)
    for inst in wanted:
        found = live.get((inst.project, inst.name))
        if found is None:
            raise refuse(missing(tree, inst), "")
        why = found.foreign(tree.owner)
        if why:
            raise refuse(f"instance {inst.name} (project {inst.project}) is not this tree's: "
                         f"{why}", f"make {verb} acts only on instances this description made")
        if not found.running:
            raise refuse(f"instance {inst.name} (project {inst.project}) is {found.status}",
                         f"make start I={inst.name}")


def running(ctx: Context, verb: str) -> tuple[Tree, Instance]:
    """The one instance I= names, refused unless it exists and runs."""
    inst = one(ctx, verb)
    tree = ctx.tree()
    live = read(ctx, tree).get((inst.project, inst.name))
    if live is None:
        raise refuse(missing(tree, inst), "")
    if not live.running:
        raise refuse(f"instance {inst.name} (project {inst.project}) is {live.status}",
                     f"make start I={inst.name}")
    return tree, inst

