"""Integration tests that only read a lab share one applied lab per module; a test module that
needs its own lab says why in its docstring.

Every tests/integration/test_*.py carries, in its module docstring, a paragraph that starts
with ``Own lab: `` and gives the reason (or ``Own lab: none (...)`` and what it uses instead),
and no module applies more than one lab from its module- or session-scoped fixtures.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
MODULES = sorted(INTEGRATION.glob("test_*.py"))
MARK = "Own lab: "
SHORTEST = 40
SHARED_SCOPES = {"module", "session"}
MAKERS = {"make", "lab_make"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _paragraphs(doc: str) -> list[str]:
    """The docstring's paragraphs (blank-line separated), each on one line."""
    found, current = [], []
    for line in doc.splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            found.append(" ".join(current))
            current = []
    if current:
        found.append(" ".join(current))
    return found


def _shared_scope(decorator: ast.expr) -> bool:
    """``@pytest.fixture(scope="module")`` or ``scope="session"`` (also a bare ``fixture``)."""
    if not isinstance(decorator, ast.Call):
        return False
    func = decorator.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "fixture":
        return False
    return any(kw.arg == "scope" and isinstance(kw.value, ast.Constant)
               and kw.value.value in SHARED_SCOPES for kw in decorator.keywords)


def _applies(node: ast.AST) -> bool:
    """The fixture calls make(...), lab_make(...) or x.make(...) with the target "apply"."""
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        maker = (isinstance(func, ast.Name) and func.id in MAKERS) or (
            isinstance(func, ast.Attribute) and func.attr == "make")
        if maker and any(isinstance(arg, ast.Constant) and arg.value == "apply"
                         for arg in call.args):
            return True
    return False


def _applying_fixtures(tree: ast.Module) -> list[str]:
    return [node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(_shared_scope(d) for d in node.decorator_list) and _applies(node)]


def test_the_integration_modules_are_found() -> None:
    assert len(MODULES) > 10, MODULES


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_the_docstring_says_why_the_module_has_its_own_lab(path: Path) -> None:
    doc = ast.get_docstring(_tree(path))
    assert doc, f"{path.name} has no module docstring"
    said = [p for p in _paragraphs(doc) if p.startswith(MARK)]
    assert said, (f"{path.name}: its module docstring has no paragraph starting with "
                  f"{MARK!r} (why it needs a lab of its own, or 'Own lab: none (...)')")
    assert len(said) == 1, f"{path.name}: {len(said)} 'Own lab' paragraphs, want one"
    assert len(said[0]) >= SHORTEST, f"{path.name}: the 'Own lab' paragraph is too short"


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_a_module_applies_at_most_one_shared_lab(path: Path) -> None:
    applying = _applying_fixtures(_tree(path))
    assert len(applying) <= 1, (f"{path.name}: fixtures {applying} each apply a lab: tests "
                                "that only read a lab share one per module")


def test_the_fixture_scan_sees_an_applying_module_fixture() -> None:
    """The scan is not vacuous: a module fixture that applies is found, a function one not."""
    tree = ast.parse(
        "import pytest\n"
        "@pytest.fixture(scope='module')\n"
        "def lab(tmp):\n"
        "    lab = Lab(tmp)\n"
        "    lab.make('apply', 'TAGS=infra')\n"
        "    yield lab\n"
        "@pytest.fixture(scope='session')\n"
        "def other(tmp):\n"
        "    return lab_make(tmp, 'apply')\n"
        "@pytest.fixture\n"
        "def each(tmp):\n"
        "    make(tmp, 'apply')\n"
        "@pytest.fixture(scope='module')\n"
        "def synced(tmp):\n"
        "    make(tmp, 'sync')\n")
    assert _applying_fixtures(tree) == ["lab", "other"]
