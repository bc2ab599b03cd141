"""`make copy FROM=<instance>:<path> TO=<instance>`: a file or folder from one instance into
another's /root/Incoming/<source>/, as QubesOS's qvm-copy does (ADR-085).

Everything the user typed is checked before Incus is asked anything: FROM is a declared
instance and an absolute path, TO a declared instance and another one, and the tree's
file_policies allow the direction (within one domain always). Then both must run. The copy
itself (streamed, checked, never overwriting) is anklume/ops/transfer.py's.
"""

from __future__ import annotations

from anklume import checks, file_policies
from anklume.ops import instances, transfer
from anklume.ops.context import Context
from anklume.ops.problems import refuse
from anklume.ops.tree import Instance, Tree

EXAMPLE = "e.g. make copy FROM=pro-dev:/root/report.pdf TO=perso-desktop"


def _instance(tree: Tree, variable: str, name: str) -> Instance:
    if name not in tree.instances:
        guess = checks.did_you_mean(name, tree.instances)
        hint = f"did you mean '{guess}'? " if guess else ""
        raise refuse(f"{variable}: {name!r} is no instance of this tree",
                     f"{hint}make status lists them")
    return tree.instances[name]


def parse(tree: Tree, source: str, target: str) -> tuple[Instance, str, Instance]:
    """(source instance, absolute path, target instance) from FROM= and TO=, or refused."""
    name, colon, path = source.partition(":")
    if not colon or not path:
        raise refuse(f"FROM={source} names no path", f"write FROM=<instance>:<path>, {EXAMPLE}")
    if not path.startswith("/"):
        raise refuse(f"FROM={source}: {path!r} is a relative path",
                     "give the absolute path in the instance, e.g. /root/notes")
    if ":" in target:
        raise refuse(f"TO={target} is not an instance name",
                     "TO= names the instance only: the copy lands in its "
                     f"{transfer.INCOMING}/<source>/")
    src, dst = _instance(tree, "FROM", name), _instance(tree, "TO", target)
    if src.name == dst.name:
        raise refuse(f"FROM and TO both name {src.name}: a copy to itself",
                     f"use make exec I={src.name} CMD='cp ...' inside one instance")
    return src, path, dst


def check_policy(tree: Tree, src: Instance, dst: Instance, key: str = "file_policies",
                 what: str = "copies") -> None:
    """Refused unless the tree's KEY (file_policies, or clipboard_policies for make clip)
    allows WHAT from SRC into DST."""
    policies = tree.raw.get(f"anklume_{key}") or []
    if not file_policies.allows(policies, (src.name, src.domain), (dst.name, dst.domain)):
        raise refuse(f"no {key} entry allows {what} from {src.name} (domain "
                     f"{src.domain}) to {dst.name} (domain {dst.domain})",
                     f"add `- {{from: {src.domain}, to: {dst.domain}}}` (or the machines) to "
                     f"{key} in infra.yml, then make sync")


def _shown(text: str) -> str:
    """TEXT on one line: a name with a control character is printed escaped."""
    return text if text.isprintable() else ascii(text)


def run(ctx: Context) -> int:
    tree = ctx.tree()
    src, path, dst = parse(tree, ctx.get("FROM").strip(), ctx.get("TO").strip())
    check_policy(tree, src, dst)
    instances.ours_and_running(ctx, tree, "copy", src, dst)
    report = transfer.copy_between(
        transfer.Endpoint(src.name, src.project, tree.remote), path,
        transfer.Endpoint(dst.name, dst.project, tree.remote))
    landed = report.landed.rsplit("/", 1)[-1]
    for f in report.files:
        shown = landed + f.path[f.path.find("/"):] if "/" in f.path else landed
        print(f"{f.sha256}  {f.size:>12}  {_shown(shown)}", file=ctx.out)
    count = len(report.files)
    print(f"copy: {src.name}:{_shown(path)} -> {dst.name}:{_shown(report.landed)} "
          f"({count} file{'s' if count != 1 else ''}, {report.total} bytes)", file=ctx.out)
    return 0
