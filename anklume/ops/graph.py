"""`make graph [INFRA=...] [OUT=path.svg]`: draw the isolation of INFRA as SVG (ADR-090).

The DOT text comes from the validated model (anklume/graph.py); Graphviz's ``dot`` lays it
out. Only OUT is written (default graph.svg at the tree's root), through a temp file beside
it, so a failed run leaves the old drawing whole.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from anklume import graph, validate, writer, yamlload
from anklume.model import Infra
from anklume.ops.context import Context
from anklume.ops.problems import refuse

DEFAULT_OUT = "graph.svg"
INSTALL = "install Graphviz: make host, or apt-get install graphviz"
# dot lays out a few hundred nodes in well under a second; more is a hang.
TIMEOUT_S = 60


def dot_program() -> str:
    """Where ``dot`` is; one line saying how to install it when it is not."""
    found = shutil.which("dot")
    if found is None:
        raise refuse("Graphviz's dot is not installed (make graph lays the drawing out with "
                     "it)", INSTALL)
    return found


def svg(dot_text: str, program: str) -> str:
    """The SVG ``dot`` draws from DOT_TEXT."""
    try:
        proc = subprocess.run([program, "-Tsvg"], input=dot_text, capture_output=True,
                              text=True, check=False, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise refuse(f"dot did not run: {exc}", INSTALL) from None
    if proc.returncode != 0 or not proc.stdout:
        said = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
        raise refuse(f"dot failed: {said}", "please report it with the infra.yml it drew")
    return proc.stdout


def load(path: Path, display: str) -> Infra:
    """INFRA validated as `make sync` does (the machines' roles are not looked up: they
    are not drawn)."""
    infra, _warnings = validate.validate(
        yamlload.load_text(yamlload.read_text(str(path), display), display))
    return infra


def output(ctx: Context) -> tuple[Path, str]:
    """OUT (relative to the tree's root), checked before any work, and how to name it."""
    display = ctx.get("OUT") or DEFAULT_OUT
    path = ctx.root / display
    if path.is_dir():
        raise refuse(f"OUT={display} is a directory", "name the SVG file to write, e.g. "
                     f"OUT={display.rstrip('/')}/isolation.svg")
    if not path.parent.is_dir():
        raise refuse(f"OUT={display}: the directory {path.parent} does not exist",
                     "create it, or name a file in an existing directory")
    return path, display


def run(ctx: Context) -> int:
    program = dot_program()
    path, display = output(ctx)
    infra = load(ctx.root / ctx.infra, ctx.infra)
    drawing = svg(graph.dot(infra), program)
    writer.atomic_write(str(path), drawing, display)
    machines = sum(len(d.machines) for d in infra.domains)
    print(f"graph: wrote {display} ({len(infra.domains)} domains, {machines} machines, "
          f"{len(infra.policies)} network policies)", file=ctx.out)
    return 0
