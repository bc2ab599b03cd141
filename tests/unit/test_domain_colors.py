"""A colour per domain (ADR-090): declared as a QubesOS label or `#rrggbb`, else a default
that tells domains apart and stays put when a domain is added; rendered in the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from anklume import colors, validate, yamlload
from anklume.errors import InputError
from anklume.model import Infra
from tests.unit.gen_support import VALID, sync

pytestmark = pytest.mark.unit


def _infra(text: str) -> Infra:
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return infra


def _colors(text: str) -> dict[str, str]:
    return {d.name: d.color for d in _infra(text).domains}


def _with_pro(line: str) -> str:
    return VALID.replace("    ephemeral: true\n", f"    ephemeral: true\n    {line}\n")


def _errors(text: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        _infra(text)
    return [p.render() for p in caught.value.problems]


def test_left_out_the_admin_domain_is_black_and_the_others_follow_their_subnet_id() -> None:
    assert _colors(VALID) == {"admin": "black", "pro": "blue"}  # pro: subnet_id 2


def test_adding_a_domain_changes_no_other_domains_colour() -> None:
    more = VALID + "  perso:\n    subnet_id: 1\n"
    assert _colors(more) == {"admin": "black", "pro": "blue", "perso": "yellow"}


def test_subnet_ids_one_to_seven_get_seven_colours_and_none_is_the_admins() -> None:
    chosen = [colors.default(i, admin=False) for i in range(1, 8)]
    assert len(set(chosen)) == 7 and colors.ADMIN not in chosen
    assert set(chosen) | {colors.ADMIN} == set(colors.LABELS)


def test_no_admin_domain_means_no_black_by_default() -> None:
    text = VALID.replace('  base_subnet: "10.100"\n',
                         '  base_subnet: "10.100"\n  admin_domain: ""\n')
    assert _colors(text) == {"admin": "gray", "pro": "blue"}  # admin here: subnet_id 0


@pytest.mark.parametrize(("declared", "kept", "hex_"), [
    ("purple", "purple", "#75507b"),
    ('"#A0B1c2"', "#a0b1c2", "#a0b1c2"),
])
def test_a_declared_colour_is_kept_and_rendered_with_its_hex(
        tmp_path: Path, declared: str, kept: str, hex_: str) -> None:
    result = sync(tmp_path, _with_pro(f"color: {declared}"))
    assert result.code == 0, result.err
    record: dict[str, Any] = yaml.safe_load(
        (tmp_path / "group_vars" / "all.yml").read_text())["anklume_domains"]
    assert (record["pro"]["color"], record["pro"]["color_hex"]) == (kept, hex_)
    assert (record["admin"]["color"], record["admin"]["color_hex"]) == ("black", "#000000")


@pytest.mark.parametrize(("value", "message"), [
    ("pink", "infra.yml:17: domains.pro.color: 'pink' is not a colour; use a QubesOS label "
             "(red, orange, yellow, green, gray, blue, purple, black) or a quoted hex colour "
             'like "#3465a4"'),
    ("Blue", "infra.yml:17: domains.pro.color: 'Blue' is not a colour; did you mean 'blue'? "
             "use a QubesOS label"),
    ('"#12345g"', "infra.yml:17: domains.pro.color: '#12345g' is not a hex colour; write # "
                  'and 6 hex digits, e.g. "#3465a4"'),
    ('"#fff"', "infra.yml:17: domains.pro.color: '#fff' is not a hex colour"),
    # Unquoted, `#` starts a YAML comment: the key holds nothing.
    ("#3465a4", 'infra.yml:17: domains.pro.color: expected a string, got null None; write it '
                'like color: "#3465a4"'),
])
def test_a_wrong_colour_is_one_line_with_where_and_the_fix(value: str, message: str) -> None:
    errors = _errors(_with_pro(f"color: {value}"))
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_a_wrong_colour_stops_the_sync_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    result = sync(tmp_path, _with_pro("color: pink"))
    assert result.code == 2 and "domains.pro.color" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "group_vars").exists()


TEMPLATE = """\
domains:
  admin: {subnet_id: 0}
domain_templates:
  student:
    count: 2
    first_subnet_id: 11
    COLOR
"""


def test_a_templates_colour_is_each_of_its_domains() -> None:
    assert _colors(TEMPLATE.replace("COLOR", "color: green")) == {
        "admin": "black", "student01": "green", "student02": "green"}
    # Left out, each generated domain has its own subnet_id's colour.
    assert _colors(TEMPLATE.replace("COLOR", "")) == {
        "admin": "black", "student01": "orange", "student02": "purple"}


def test_a_wrong_template_colour_is_reported_at_the_templates_line() -> None:
    errors = _errors(TEMPLATE.replace("COLOR", "color: pinkish"))
    assert errors[0].startswith("infra.yml:7: domain_templates.student.color: 'pinkish' is "
                                "not a colour (in student01 and 1 more)"), errors


@pytest.mark.parametrize(("value", "expected"), [
    ("red", "#cc0000"), ("black", "#000000"), ("#ABCDEF", "#abcdef")])
def test_hex_of_gives_rrggbb_for_any_colour(value: str, expected: str) -> None:
    assert colors.hex_of(value) == expected


def test_hex_of_refuses_what_is_no_colour() -> None:
    with pytest.raises(ValueError):
        colors.hex_of("#abc")


def test_a_tint_is_lighter_and_keeps_white_white() -> None:
    assert colors.tint("black") == "#d9d9d9"
    assert colors.tint("#ffffff") == "#ffffff"
