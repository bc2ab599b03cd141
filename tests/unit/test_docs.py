"""The docs cannot drift: infra-format.md vs the schema, generated-vars.md vs the renderer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from anklume import render, schema, validate, yamlload
from tests.unit.gen_support import VALID

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROOT = DOCS.parent


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + 1)
    return text[start: nxt if nxt >= 0 else None]


def _table_names(text: str) -> list[str]:
    return re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M)


@pytest.mark.parametrize("section", list(schema.SECTIONS))
def test_infra_format_documents_every_key_of_the_schema(section: str) -> None:
    doc = (DOCS / "infra-format.md").read_text()
    part = _section(doc, "## " + schema.SECTION_TITLES[section])
    assert schema.render_table(section) in part, (
        f"docs/infra-format.md table for {section} differs from anklume/schema.py")
    assert _table_names(part) == [k.name for k in schema.SECTIONS[section]]


def test_every_schema_key_has_a_type_default_meaning_and_example() -> None:
    for keys in schema.SECTIONS.values():
        for k in keys:
            assert k.type and k.default_text and k.meaning and k.example, k


def _infra() -> tuple[dict[str, str], object]:
    infra, _ = validate.validate(yamlload.load_text(
        VALID + "network_policies:\n  - {from: pro, to: admin-ansible, ports: [22]}\n",
        "infra.yml"))
    return render.render(infra), infra


@pytest.mark.parametrize(("heading", "rel"), [
    ("## `group_vars/all.yml`", "group_vars/all.yml"),
    ("## `group_vars/<domain>.yml`", "group_vars/pro.yml"),
    ("## `host_vars/<machine>.yml`", "host_vars/pro-dev.yml"),
])
def test_generated_vars_contract_matches_the_renderer(heading: str, rel: str) -> None:
    contract = _section((DOCS / "generated-vars.md").read_text(), heading)
    bodies, _ = _infra()
    rendered = yaml.safe_load(bodies[rel])
    assert _table_names(contract) == list(rendered), rel


def test_domain_record_and_policy_shapes_match_the_contract() -> None:
    contract = (DOCS / "generated-vars.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", contract, flags=re.S)
    record = next(yaml.safe_load(b) for b in blocks if b.startswith("pro:"))["pro"]
    policy = next(yaml.safe_load(b) for b in blocks if b.startswith("- from:"))[0]
    bodies, _ = _infra()
    all_vars = yaml.safe_load(bodies["group_vars/all.yml"])
    assert list(all_vars["anklume_domains"]["pro"]) == list(record)
    assert list(all_vars["anklume_network_policies"][0]) == list(policy)


def test_inventory_shape_matches_the_contract() -> None:
    bodies, _ = _infra()
    assert yaml.safe_load(bodies["inventory/pro.yml"]) == {
        "all": {"children": {"pro": {"hosts": {"pro-dev": {}}}, "anklume_provision": {},
                             "anklume_provision_due": {}}}}


def test_testing_md_names_exactly_the_roles_with_a_molecule_scenario() -> None:
    with_scenario = sorted(p.parts[-4] for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    paragraph = text.split("## Molecule scenarios", 1)[1].split("(`tests/unit/test_docs.py`")[0]
    named = sorted(re.findall(r"`([a-z_]+)`", paragraph))
    assert named == with_scenario
    for role in sorted(p.name for p in (ROOT / "roles").iterdir()):
        if role not in with_scenario:
            assert f"`{role}`" in text.split("## Molecule scenarios", 1)[1], role
