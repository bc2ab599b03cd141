"""Per-domain NAT: the `nat` key of a domain reaches its record in group_vars/all.yml.

`nat: false` cuts a domain's masquerading to the uplink (a sandbox); left out, the record
holds `nat: null` and the networks role's `incus_networks_nat` (default true) decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.gen_support import VALID, sync

pytestmark = pytest.mark.unit


def _domains(tmp: Path, text: str) -> dict[str, Any]:
    res = sync(tmp, text)
    assert res.code == 0, res.err
    allvars = yaml.safe_load((tmp / "group_vars" / "all.yml").read_text())
    domains: dict[str, Any] = allvars["anklume_domains"]
    return domains


def test_nat_left_out_renders_null_for_the_role_default(tmp_path: Path) -> None:
    domains = _domains(tmp_path, VALID)
    assert domains["pro"]["nat"] is None
    assert domains["admin"]["nat"] is None


@pytest.mark.parametrize("value", [True, False])
def test_nat_declared_renders_as_declared(tmp_path: Path, value: bool) -> None:
    text = VALID.replace("    ephemeral: true\n",
                         f"    ephemeral: true\n    nat: {str(value).lower()}\n")
    domains = _domains(tmp_path, text)
    assert domains["pro"]["nat"] is value
    assert domains["admin"]["nat"] is None


def test_nat_false_then_removed_resyncs(tmp_path: Path) -> None:
    nat_off = VALID.replace("    ephemeral: true\n", "    ephemeral: true\n    nat: false\n")
    assert _domains(tmp_path, nat_off)["pro"]["nat"] is False
    again = sync(tmp_path, nat_off)
    assert again.code == 0 and again.out.startswith("sync: no changes"), again.out
    assert _domains(tmp_path, VALID)["pro"]["nat"] is None


def test_nat_is_documented_in_generated_vars() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "generated-vars.md").read_text()
    assert "  nat: null" in text
