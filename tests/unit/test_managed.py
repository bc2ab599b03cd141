"""managed: the generated section between two marker lines, the rest untouched."""

from __future__ import annotations

import pytest

from anklume import managed
from anklume.errors import InputError

pytestmark = pytest.mark.unit

SECTION = managed.section("a: 1\n")


def test_new_file_is_a_document_with_one_section() -> None:
    assert managed.merge(None, "a: 1\n", "f") == "---\n" + SECTION


def test_replacing_the_section_keeps_both_sides() -> None:
    old = "head\r\n" + managed.section("a: 0\n") + "tail"
    assert managed.merge(old, "a: 1\n", "f") == "head\r\n" + SECTION + "tail"


def test_file_without_markers_gets_a_section_appended() -> None:
    assert managed.merge("x: 1", "a: 1\n", "f") == "x: 1\n" + SECTION
    assert managed.merge("", "a: 1\n", "f") == SECTION


def test_only_newlines_separate_lines() -> None:
    parts = managed.split("a\rb\x85c\n" + SECTION + "\x85z", "f")
    assert parts is not None
    assert (parts.before, parts.body, parts.after) == ("a\rb\x85c\n", "a: 1\n", "\x85z")
    with pytest.raises(InputError):  # a START glued to user text is not a marker line
        managed.split("x\x85" + SECTION, "f")


@pytest.mark.parametrize(("text", "message"), [
    (managed.START + "\n", "f:1: managed START marker without an END"),
    (managed.END + "\n", "f:1: managed END marker without a START"),
    (SECTION + SECTION, "f:4: second managed START marker"),
])
def test_broken_markers_are_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        managed.split(text, "f")
    assert exc.value.problems[0].render().startswith(message)
