"""Class-wide selectors, DOMAIN=<domain|template|pattern> (plugins/filter/scope.py)."""

from __future__ import annotations

import pytest
from ansible_collections.anklume.incus.plugins.filter.scope import (
    FilterModule,
    scope_hosts,
    scope_unmatched,
)

pytestmark = pytest.mark.unit

# Ansible's `groups` for an admin domain and a template `student` of three domains.
GROUPS = {
    "all": ["teacher", "student01-srv", "student02-srv", "student03-srv"],
    "ungrouped": [],
    "admin": ["teacher"],
    "student": ["student01-srv", "student02-srv", "student03-srv"],
    "student01": ["student01-srv"],
    "student02": ["student02-srv"],
    "student03": ["student03-srv"],
}
CLASS = ["student01-srv", "student02-srv", "student03-srv"]


@pytest.mark.parametrize(("selector", "hosts"), [
    ("student", CLASS),
    ("student*", CLASS),
    ("student0[12]", CLASS[:2]),
    ("student02", ["student02-srv"]),
    ("student03, admin", ["student03-srv", "teacher"]),
    ("*", ["student01-srv", "student02-srv", "student03-srv", "teacher"]),
])
def test_a_selector_reaches_the_hosts_of_the_groups_it_names(selector: str,
                                                             hosts: list[str]) -> None:
    assert scope_hosts(GROUPS, selector) == hosts
    assert scope_unmatched(GROUPS, selector) == []


def test_the_class_never_includes_the_admin_domain() -> None:
    assert "teacher" not in scope_hosts(GROUPS, "student")
    assert "teacher" not in scope_hosts(GROUPS, "student*")


def test_parts_that_match_nothing_are_reported_and_ansibles_groups_are_no_domains() -> None:
    assert scope_unmatched(GROUPS, "studnet*,admin,all,ungrouped") == [
        "studnet*", "all", "ungrouped"]
    assert scope_hosts(GROUPS, "studnet*") == []


def test_the_filters_are_exposed_under_their_names() -> None:
    assert set(FilterModule().filters()) == {"scope_hosts", "scope_unmatched", "tag_selected"}
