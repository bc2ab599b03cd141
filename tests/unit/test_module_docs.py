"""Every module's documentation parses and matches the arguments it accepts.

ansible-doc and ansible-lint only warn on a broken DOCUMENTATION block, so
this test is what keeps `ansible-doc incus_<kind>` (and anklume_nftables) truthful.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit
MODULES = sorted((REPO / "plugins" / "modules").glob("[!_]*.py"))


def _assignments(path: Path) -> dict[str, ast.expr]:
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def _spec_keys(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Dict):
        return {k.value for k in node.keys if isinstance(k, ast.Constant)}
    assert isinstance(node, ast.Call), "ARGUMENT_SPEC must be a dict literal or dict(...)"
    return {kw.arg for kw in node.keywords if kw.arg}


def test_there_are_modules_to_check() -> None:
    assert len(MODULES) >= 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documentation_examples_and_return_are_valid_yaml(path: Path) -> None:
    found = _assignments(path)
    for name in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        node = found.get(name)
        assert isinstance(node, ast.Constant), f"{path.name}: {name} is missing"
        yaml.safe_load(node.value)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documented_options_are_the_accepted_arguments(path: Path) -> None:
    found = _assignments(path)
    doc = found["DOCUMENTATION"]
    assert isinstance(doc, ast.Constant)
    documented = set((yaml.safe_load(doc.value).get("options") or {}).keys())
    assert documented == _spec_keys(found["ARGUMENT_SPEC"])
