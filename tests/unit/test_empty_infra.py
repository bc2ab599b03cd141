"""A file that declares no domain is refused unless it says so (`allow_empty: true`).

Synced, such a file takes every domain out of the inventory: seldom what a truncated or
half-edited infra.yml means, so it takes an explicit key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.gen_support import VALID, run, sync, tree, write_infra

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("domains", ["domains:", "domains: {}", "domains: null"])
def test_a_file_without_domains_is_refused_with_the_way_to_remove_everything(
        tmp_path: Path, domains: str) -> None:
    result = sync(tmp_path, f"project_name: t\n{domains}\n")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"{tmp_path / 'infra.yml'}:2: domains: no domain is declared")
    assert "make destroy FORCE=1" in result.err and "make sync-clean" in result.err
    assert "allow_empty: true" in result.err
    assert tree(tmp_path) == {}


def test_a_file_without_the_domains_key_is_refused_too(tmp_path: Path) -> None:
    result = sync(tmp_path, "project_name: t\n")
    assert result.code == 2 and "missing required key 'domains'" in result.err


def test_emptying_a_synced_file_leaves_the_inventory_as_it_was(tmp_path: Path) -> None:
    assert sync(tmp_path, VALID).code == 0
    before = tree(tmp_path)
    assert sync(tmp_path, "domains: {}\n").code == 2
    assert tree(tmp_path) == before


def test_allow_empty_syncs_an_empty_file_and_takes_every_domain_out(tmp_path: Path) -> None:
    assert sync(tmp_path, VALID).code == 0
    result = sync(tmp_path, "allow_empty: true\ndomains: {}\n")
    assert result.code == 0, result.err
    assert "removed from the inventory: inventory/pro.yml" in result.out
    assert not (tmp_path / "inventory" / "pro.yml").exists()
    cleaned = run(str(write_infra(tmp_path, "allow_empty: true\ndomains:\n")),
                  "--clean-orphans", "--force")
    assert cleaned.code == 0, cleaned.err
    assert set(tree(tmp_path)) == {"group_vars/all.yml"}


def test_allow_empty_false_is_the_default_spelled_out(tmp_path: Path) -> None:
    assert sync(tmp_path, "allow_empty: false\ndomains: {}\n").code == 2


def test_a_file_with_only_a_domain_template_is_not_empty(tmp_path: Path) -> None:
    result = sync(tmp_path, """\
domains: {}
domain_templates:
  student:
    count: 2
    first_subnet_id: 11
""")
    assert result.code == 0, result.err
