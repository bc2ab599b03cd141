"""`make graph` (ADR-090): it writes only OUT, whole or not at all, says in one line what
stops it, and the drawing of the shipped infra.yml in the docs cannot go stale."""

from __future__ import annotations

import html
import io
import os
import re
import shutil
from pathlib import Path

import pytest

from anklume import graph, validate, yamlload
from anklume.ops import graph as graph_target
from anklume.ops import main
from anklume.ops.context import Context
from anklume.ops.targets import TARGETS
from tests.incus_helpers import REPO, SHIPPED_INFRA

pytestmark = pytest.mark.unit

DRAWING = REPO / "docs" / "images" / "isolation.svg"
REDRAW = ("docs/images/isolation.svg is stale: make graph INFRA=tests/fixtures/shipped_infra.yml "
          "OUT=docs/images/isolation.svg")


def _shipped_dot() -> str:
    infra, _ = validate.validate(yamlload.load_text(SHIPPED_INFRA.read_text(), "infra.yml"))
    return graph.dot(infra)


def test_the_drawing_in_the_docs_is_of_the_shipped_infra_yml() -> None:
    """Its digest is the DOT text's the shipped infra.yml gives now (no Graphviz needed)."""
    assert graph.digest_in(DRAWING.read_text()) == graph.digest_in(_shipped_dot()), REDRAW


def _said(svg: str) -> list[str]:
    """What a drawing says, whatever the fonts and Graphviz's version place: every title and
    text, in order."""
    return [html.unescape(t) for t in
            re.findall(r"<(?:title|text)\b[^>]*>([^<]*)</(?:title|text)>", svg)]


def test_the_drawing_in_the_docs_says_what_dot_draws_now() -> None:
    program = shutil.which("dot")
    if program is None:
        pytest.skip("Graphviz's dot is not installed (make host installs it)")
    now = graph_target.svg(_shipped_dot(), program)
    committed = DRAWING.read_text()
    assert _said(now) == _said(committed), REDRAW
    assert "perso-desktop" in _said(committed)


# A dot that hands back what it was given: the tests see exactly the text make graph drew.
ECHO_DOT = '#!/bin/sh\n[ "$1" = -Tsvg ] || exit 3\nexec /bin/cat\n'
FAILING_DOT = '#!/bin/sh\necho "Error: <stdin>: syntax error in line 3" >&2\nexit 1\n'


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(SHIPPED_INFRA, tmp_path / "infra.yml")
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("MAKELEVEL", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _dot(tree: Path, script: str) -> None:
    path = tree / "bin" / "dot"
    path.write_text(script)
    path.chmod(0o755)


def _make_graph(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
                flags: str = "") -> tuple[int, list[str]]:
    """`make graph FLAGS` through the ops entry point: its status and error lines."""
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}" if flags else "")
    rc = main.main(["graph"])
    return rc, capfd.readouterr().err.splitlines()


def _drawn(tree: Path, **values: str) -> str:
    """Run the target's runner in TREE with VALUES; what it printed."""
    out = io.StringIO()
    ctx = Context(TARGETS["graph"], values, root=tree, out=out)
    assert graph_target.run(ctx) == 0
    return out.getvalue()


def test_it_writes_graph_svg_at_the_root_and_nothing_else(tree: Path) -> None:
    _dot(tree, ECHO_DOT)
    before = sorted(os.listdir(tree))
    assert _drawn(tree) == "graph: wrote graph.svg (4 domains, 4 machines, 0 network policies)\n"
    assert sorted(os.listdir(tree)) == sorted([*before, "graph.svg"])
    assert (tree / "graph.svg").read_text() == _shipped_dot()


def test_out_names_the_file_and_a_new_drawing_replaces_the_old(tree: Path) -> None:
    _dot(tree, ECHO_DOT)
    (tree / "docs").mkdir()
    (tree / "docs" / "old.svg").write_text("old drawing")
    assert _drawn(tree, OUT="docs/old.svg").startswith("graph: wrote docs/old.svg ")
    assert os.listdir(tree / "docs") == ["old.svg"]
    assert (tree / "docs" / "old.svg").read_text() == _shipped_dot()


@pytest.mark.parametrize(("script", "flags", "line"), [
    (None, "", "make graph: Graphviz's dot is not installed (make graph lays the drawing out "
               "with it); install Graphviz: make host, or apt-get install graphviz"),
    (FAILING_DOT, "", "make graph: dot failed: Error: <stdin>: syntax error in line 3"),
    (ECHO_DOT, "OUT=docs", "make graph: OUT=docs is a directory; name the SVG file to write, "
                           "e.g. OUT=docs/isolation.svg"),
    (ECHO_DOT, "OUT=nowhere/x.svg", "make graph: OUT=nowhere/x.svg: the directory "),
    (ECHO_DOT, "INFRA=missing.yml", "missing.yml: "),
    (ECHO_DOT, "I=pro-dev", "make graph: I= is not read here"),
])
def test_what_stops_it_is_one_line_exit_2_and_the_old_drawing_stays(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        script: str | None, flags: str, line: str) -> None:
    if script is not None:
        _dot(tree, script)
    (tree / "docs").mkdir()
    (tree / "graph.svg").write_text("old drawing")
    rc, err = _make_graph(monkeypatch, capfd, flags)
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert (tree / "graph.svg").read_text() == "old drawing"
    assert sorted(os.listdir(tree)) == ["bin", "docs", "graph.svg", "infra.yml"]


def test_a_wrong_infra_yml_is_its_validation_line(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    _dot(tree, ECHO_DOT)
    text = (tree / "infra.yml").read_text().replace("    subnet_id: 2\n",
                                                    "    subnet_id: 2\n    color: pink\n")
    (tree / "infra.yml").write_text(text)
    rc, err = _make_graph(monkeypatch, capfd)
    assert rc == 2 and len(err) == 1
    assert re.match(r"infra\.yml:\d+: domains\.pro\.color: 'pink' is not a colour; ", err[0])
    assert not (tree / "graph.svg").exists()
