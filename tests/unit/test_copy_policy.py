"""file_policies (ADR-085): checked by make sync, rendered as anklume_file_policies, and the
decision make copy takes from it (within a domain always; across, only as declared)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from anklume import file_policies, render, validate, yamlload
from anklume.errors import InputError
from tests.unit.gen_support import VALID

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"
THREE = VALID + """\
  perso:
    subnet_id: 3
    machines:
      perso-desktop: {}
      perso-web: {}
"""


def rendered(extra: str) -> list[dict[str, str]]:
    infra, _ = validate.validate(yamlload.load_text(THREE + extra, "infra.yml"))
    got: list[dict[str, str]] = yaml.safe_load(
        render.render(infra)["group_vars/all.yml"])["anklume_file_policies"]
    return got


def problems(extra: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        validate.validate(yamlload.load_text(THREE + extra, "infra.yml"))
    return [p.render() for p in exc.value.problems]


def test_no_policy_renders_an_empty_list() -> None:
    assert rendered("") == []


def test_domains_and_machines_render_with_their_kind() -> None:
    assert rendered("file_policies:\n  - {from: pro, to: perso-desktop, description: x}\n") == [
        {"from": "pro", "from_kind": "domain", "to": "perso-desktop", "to_kind": "machine",
         "description": "x"}]


def test_the_contract_shows_the_rendered_shape() -> None:
    text = (DOCS / "generated-vars.md").read_text(encoding="utf-8")
    block = text.split("anklume_file_policies[]", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", block, flags=re.S)
    assert found is not None
    shape = yaml.safe_load(found.group(1))[0]
    assert list(shape) == list(rendered("file_policies:\n  - {from: pro, to: perso}\n")[0])


@pytest.mark.parametrize(("extra", "line"), [
    ("file_policies:\n  - {from: prod, to: perso}\n",
     "infra.yml:26: file_policies[0].from: 'prod' is neither a domain nor a machine; "
     "did you mean 'pro'? name a domain, template or machine of this file"),
    ("file_policies:\n  - {from: pro, to: host}\n",
     "infra.yml:26: file_policies[0].to: 'host' is neither a domain nor a machine; "
     "name a domain, template or machine of this file"),
    ("file_policies:\n  - {from: pro}\n",
     "infra.yml:26: file_policies[0]: missing required key 'to'; add it, e.g. to: perso"),
    ("file_policies:\n  - {from: pro, to: perso, ports: [22]}\n",
     "infra.yml:26: file_policies[0].ports: unknown key 'ports'; "
     "remove it or use one of: from, to, description"),
])
def test_a_bad_entry_is_one_line_that_says_where(extra: str, line: str) -> None:
    assert problems(extra) == [line]


POLICIES = [
    {"from": "pro", "from_kind": "domain", "to": "perso-desktop", "to_kind": "machine"},
    {"from": "perso-web", "from_kind": "machine", "to": "admin", "to_kind": "domain"},
]


@pytest.mark.parametrize(("source", "target", "allowed"), [
    (("pro-dev", "pro"), ("pro-box", "pro"), True),  # one domain: no policy needed
    (("pro-dev", "pro"), ("perso-desktop", "perso"), True),
    (("pro-dev", "pro"), ("perso-web", "perso"), False),  # only the machine named
    (("perso-desktop", "perso"), ("pro-dev", "pro"), False),  # one direction only
    (("perso-web", "perso"), ("admin-ansible", "admin"), True),
    (("perso-desktop", "perso"), ("admin-ansible", "admin"), False),
    (("admin-ansible", "admin"), ("pro-dev", "pro"), False),  # admin has no free pass
])
def test_the_decision(source: tuple[str, str], target: tuple[str, str], allowed: bool) -> None:
    assert file_policies.allows(POLICIES, source, target) is allowed


def test_a_template_stands_for_each_of_its_domains() -> None:
    got = rendered("domain_templates:\n  lab: {count: 2, first_subnet_id: 20}\n"
                   "file_policies:\n  - {from: lab, to: perso}\n")
    assert [(p["from"], p["to"]) for p in got] == [("lab01", "perso"), ("lab02", "perso")]
    assert file_policies.allows(got, ("lab02-x", "lab02"), ("perso-web", "perso"))
