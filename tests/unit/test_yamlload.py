"""yamlload: line numbers, duplicate keys and YAML oddities become clear problems."""

from __future__ import annotations

import pytest

from anklume.errors import InputError
from anklume.yamlload import dotted, load_text

pytestmark = pytest.mark.unit


def test_lines_are_recorded_for_every_path() -> None:
    doc = load_text("a:\n  b:\n    - x\n    - y: 1\n", "f.yml")
    assert doc.data == {"a": {"b": ["x", {"y": 1}]}}
    assert doc.line(("a", "b")) == 2
    assert doc.line(("a", "b", 1, "y")) == 4
    assert doc.line(("a", "b", 1, "missing")) == 4


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    with pytest.raises(InputError) as exc:
        load_text("a: 1\nb: 2\na: 3\n", "f.yml")
    [p] = exc.value.problems
    assert p.render() == ("f.yml:3: a: duplicate key 'a' (first defined on line 1); YAML would "
                          "silently keep only the last one; remove or rename one of them")


def test_syntax_error_has_its_line() -> None:
    with pytest.raises(InputError) as exc:
        load_text("a: 1\nb: [\n", "f.yml")
    assert exc.value.problems[0].render().startswith("f.yml:3: invalid YAML")


def test_merge_keys_fill_missing_keys_only() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "f.yml")
    assert doc.data["m"] == {"x": 1, "y": 3}


def test_recursive_alias_is_a_problem_not_a_crash() -> None:
    with pytest.raises(InputError, match="recursive YAML alias"):
        load_text("a: &a [*a]\n", "f.yml")


def test_empty_document_is_none() -> None:
    assert load_text("# only a comment\n", "f.yml").data is None


def test_dotted_paths() -> None:
    assert dotted(("domains", "pro", "machines", "pro-dev", "ip")) == \
        "domains.pro.machines.pro-dev.ip"
    assert dotted(("network_policies", 0, "from")) == "network_policies[0].from"
