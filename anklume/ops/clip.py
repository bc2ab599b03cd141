"""`make clip FROM=<machine> TO=<machine>`: the text in one gui machine's clipboard into
another's, once, where `clipboard_policies` allow it (ADR-091, docs/desktop.md).

Nothing crosses by itself: the host client and the servers run with the clipboard off.
This verb reads the CLIPBOARD selection of FROM's xpra display inside FROM, refuses what
is not text or is over LIMIT bytes, and sets TO's with xclip inside TO (a process of TO
keeps owning the selection). It prints the size and sha256 of what was copied, never the
text. The policy is checked before Incus is asked anything: a refused clip changes
nothing in TO.
"""

from __future__ import annotations

import hashlib
import subprocess

from anklume import checks
from anklume.ops import copy, instances
from anklume.ops import gui_xpra as xpra
from anklume.ops.context import Context
from anklume.ops.gui import _exec
from anklume.ops.problems import refuse
from anklume.ops.tree import Instance, Tree

# The most a clip carries (docs/desktop.md): text, not files (make copy moves files).
LIMIT = 1024 * 1024
# The selection targets that offer text, the preferred first.
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "STRING", "text/plain", "TEXT")
# Exit status of the scripts below when the machine's display does not exist.
NO_DISPLAY = 3
_DISPLAY_SOCKET = f"/tmp/.X11-unix/X{xpra.DISPLAY.lstrip(':')}"
_ON_DISPLAY = f'test -S {_DISPLAY_SOCKET} || exit {NO_DISPLAY}; export DISPLAY={xpra.DISPLAY}; '


def _machine(tree: Tree, variable: str, name: str) -> Instance:
    if not name:
        raise refuse(f"{variable}= is empty", "e.g. make clip FROM=pro-desk TO=perso-desk")
    if name not in tree.instances:
        guess = checks.did_you_mean(name, tree.instances)
        hint = f"did you mean '{guess}'? " if guess else ""
        raise refuse(f"{variable}: {name!r} is no instance of this tree",
                     f"{hint}make gui-list lists the gui machines")
    inst = tree.instances[name]
    if not inst.gui:
        raise refuse(f"{variable}: machine {name} does not declare gui: true",
                     "make clip copies between the clipboards of gui machines (docs/desktop.md)")
    return inst


def parse(tree: Tree, source: str, target: str) -> tuple[Instance, Instance]:
    """(FROM's machine, TO's machine), or refused."""
    src, dst = _machine(tree, "FROM", source), _machine(tree, "TO", target)
    if src.name == dst.name:
        raise refuse(f"FROM and TO both name {src.name}: a clip to itself",
                     "name two gui machines")
    return src, dst


def _run(ctx: Context, tree: Tree, inst: Instance, script: str,
         data: bytes | None = None) -> tuple[int, bytes, str]:
    """SCRIPT in INST's shell; (exit status, stdout bytes, stderr text)."""
    try:
        proc = subprocess.run(_exec(tree, inst, "sh", "-c", script), cwd=ctx.root,
                              env=ctx.env(), input=data, capture_output=True, check=False,
                              timeout=60)
    except subprocess.TimeoutExpired:
        raise refuse(f"the clipboard of {inst.name} did not answer within 60 s",
                     f"make gui-stop I={inst.name}, then make gui again") from None
    err = " ".join(proc.stderr.decode(errors="replace").split())
    return proc.returncode, proc.stdout, err


def _no_session(inst: Instance) -> Exception:
    return refuse(f"machine {inst.name} has no gui session (its display {xpra.DISPLAY} does "
                  "not exist)", f"make gui I={inst.name} APP=<an app> starts it")


def read(ctx: Context, tree: Tree, inst: Instance) -> bytes:
    """The text in INST's clipboard: refused when there is none, it is not text or it is
    over LIMIT bytes."""
    rc, out, _ = _run(ctx, tree, inst, _ON_DISPLAY + "exec timeout 10 xclip -o -selection "
                      "clipboard -t TARGETS")
    if rc == NO_DISPLAY:
        raise _no_session(inst)
    offered = [t for t in out.decode(errors="replace").split() if t.isprintable()]
    if rc != 0 or not offered:
        raise refuse(f"the clipboard of {inst.name} is empty", "copy some text there first")
    target = next((t for t in TEXT_TARGETS if t in offered), None)
    if target is None:
        shown = ", ".join(t for t in offered if t not in ("TARGETS", "TIMESTAMP", "MULTIPLE",
                                                          "SAVE_TARGETS"))
        raise refuse(f"the clipboard of {inst.name} holds no text (it offers {shown[:200]})",
                     "make clip copies text only; make copy moves files")
    rc, out, err = _run(ctx, tree, inst, _ON_DISPLAY + "timeout 10 xclip -o -selection "
                        f"clipboard -t '{target}' | head -c {LIMIT + 1}")
    if rc != 0:
        raise refuse(f"cannot read the clipboard of {inst.name}: {err or f'exit {rc}'}", "")
    if len(out) > LIMIT:
        raise refuse(f"the clipboard of {inst.name} holds more than {LIMIT} bytes",
                     "make clip copies at most 1 MiB of text; make copy moves files")
    try:
        out.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(f"the clipboard of {inst.name} holds no UTF-8 text", "") from None
    return out


def write(ctx: Context, tree: Tree, inst: Instance, text: bytes) -> None:
    """TEXT into INST's clipboard: xclip reads it from a file of INST, then stays there,
    owning the selection, until another app takes it."""
    script = (_ON_DISPLAY + 'f=$(mktemp) || exit 1; cat >"$f" && setsid -w xclip -selection '
              'clipboard -i "$f" </dev/null >/dev/null 2>&1; rc=$?; rm -f "$f"; exit $rc')
    rc, _, err = _run(ctx, tree, inst, script, text)
    if rc == NO_DISPLAY:
        raise _no_session(inst)
    if rc != 0:
        raise refuse(f"cannot set the clipboard of {inst.name}: {err or f'exit {rc}'}", "")


def run(ctx: Context) -> int:
    tree = ctx.tree()
    src, dst = parse(tree, ctx.get("FROM").strip(), ctx.get("TO").strip())
    copy.check_policy(tree, src, dst, "clipboard_policies", "clips")
    if tree.remote != "local":
        raise refuse(f"make clip acts on this host's Incus only; the tree uses Incus "
                     f"'{tree.remote}'", "run it on the host that runs the machines")
    instances.ours_and_running(ctx, tree, "clip", src, dst)
    if _run(ctx, tree, dst, _ON_DISPLAY + "true")[0] == NO_DISPLAY:
        raise _no_session(dst)  # before reading FROM: nothing is read for nothing
    text = read(ctx, tree, src)
    write(ctx, tree, dst, text)
    digest = hashlib.sha256(text).hexdigest()
    print(f"clip: {src.name} -> {dst.name}: {len(text)} bytes of text, sha256 {digest}",
          file=ctx.out)
    return 0
