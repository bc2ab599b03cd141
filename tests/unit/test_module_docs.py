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
from tests.unit.fake_incus import module
from tests.unit.module_doc import resolved

pytestmark = pytest.mark.unit
MODULES = sorted((REPO / "plugins" / "modules").glob("[!_]*.py"))


def _assignments(path: Path) -> dict[str, ast.expr]:
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


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
    """With the doc fragments merged in: same names, types, defaults and choices."""
    mod = module(path.stem)
    documented = resolved(mod.DOCUMENTATION).get("options") or {}
    assert set(documented) == set(mod.ARGUMENT_SPEC)
    for option, spec in mod.ARGUMENT_SPEC.items():
        doc = documented[option]
        for key in ("type", "default", "choices", "elements"):
            assert doc.get(key) == spec.get(key), f"{option}.{key}"


def test_every_fragment_named_exists_and_is_used() -> None:
    used = {slug.removeprefix("anklume.incus.") for path in MODULES
            for slug in yaml.safe_load(module(path.stem).DOCUMENTATION)
            .get("extends_documentation_fragment") or [] if slug.startswith("anklume.incus.")}
    shipped = {p.stem for p in (REPO / "plugins" / "doc_fragments").glob("[!_]*.py")}
    assert used == shipped
