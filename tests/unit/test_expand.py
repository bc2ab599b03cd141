"""domain_templates: N domains from one declaration (anklume/expand.py, ADR-060)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anklume import expand, render, schema, validate, yamlload
from anklume.errors import InputError
from tests.unit.gen_support import run, sync, write_infra

pytestmark = pytest.mark.unit

# The teacher's domain, the same in both forms.
ADMIN = """\
project_name: lab
global:
  base_subnet: "10.100"
domains:
  admin:
    subnet_id: 0
    machines:
      teacher:
        ip: "10.100.0.10"
"""

CLASS = ADMIN + """\
domain_templates:
  student:
    count: {count}
    first_subnet_id: 11
    description: "Student {{n}} workspace"
    ephemeral: true
    machines:
      srv:
        description: "Lab server of {{domain}}"
        ip_host: 10
        config:
          limits.memory: "1GiB"
        roles: [base_system]
      web: {{}}
"""

# The same class of 3, written out by hand: it must render the same domains and machines.
BY_HAND = ADMIN + "".join(f"""\
  student0{n}:
    description: "Student 0{n} workspace"
    subnet_id: {10 + n}
    ephemeral: true
    machines:
      student0{n}-srv:
        description: "Lab server of student0{n}"
        ip: "10.100.{10 + n}.10"
        config:
          limits.memory: "1GiB"
        roles: [base_system]
      student0{n}-web: {{}}
""" for n in (1, 2, 3))


def bodies(text: str) -> dict[str, str]:
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return render.render(infra)


def errors(text: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        validate.validate(yamlload.load_text(text, "infra.yml"))
    return [p.render() for p in exc.value.problems]


def test_a_template_renders_what_the_same_domains_written_by_hand_render() -> None:
    generated, by_hand = bodies(CLASS.format(count=3)), bodies(BY_HAND)
    assert set(generated) - set(by_hand) == {"inventory/student.yml"}
    for rel, body in by_hand.items():
        if rel != "group_vars/all.yml":
            assert generated[rel] == body, rel
    gen_all = yaml.safe_load(generated["group_vars/all.yml"])
    hand_all = yaml.safe_load(by_hand["group_vars/all.yml"])
    assert gen_all.pop("anklume_domain_templates") == {
        "student": ["student01", "student02", "student03"]}
    assert hand_all.pop("anklume_domain_templates") == {}
    assert gen_all == hand_all


def test_the_template_is_the_ansible_group_of_its_domains() -> None:
    group = yaml.safe_load(bodies(CLASS.format(count=2))["inventory/student.yml"])
    assert group == {"all": {"children": {"student": {"children": {
        "student01": {}, "student02": {}}}}}}


def test_names_subnets_and_addresses_follow_the_number() -> None:
    infra, _ = validate.validate(yamlload.load_text(CLASS.format(count=12), "infra.yml"))
    d12 = next(d for d in infra.domains if d.name == "student12")
    assert (d12.subnet_id, d12.description) == (22, "Student 12 workspace")
    assert [(m.name, m.ip) for m in d12.machines] == [("student12-srv", "10.100.22.10"),
                                                      ("student12-web", "")]


def test_lowering_the_count_leaves_the_others_untouched_and_the_last_orphaned(
        tmp_path: Path) -> None:
    assert sync(tmp_path, CLASS.format(count=6)).code == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.yml") if "student0" in p.name
              and p.name[8] in "1234"}
    result = sync(tmp_path, CLASS.format(count=4))
    assert result.code == 0, result.err
    for path, text in before.items():
        assert path.read_bytes() == text, path
    for gone in ("student05", "student06"):
        assert f"orphan: group_vars/{gone}.yml (domain {gone}" in result.out
        assert f"orphan: host_vars/{gone}-srv.yml" in result.out
        assert f"removed from the inventory: inventory/{gone}.yml" in result.out
    assert "student05" not in (tmp_path / "inventory/student.yml").read_text()
    assert "sync: no changes" in sync(tmp_path, CLASS.format(count=4)).out


def test_sync_dry_shows_the_expansion(tmp_path: Path) -> None:
    path = write_infra(tmp_path, CLASS.format(count=24))
    result = run(str(path), "--dry-run")
    assert result.code == 0, result.err
    assert ("template student: 24 domains student01..student24, 48 machines, subnets "
            "10.100.11.0/24..10.100.34.0/24") in result.out
    assert not (tmp_path / "inventory").exists()


def test_a_template_mistake_is_reported_once_at_the_templates_line(tmp_path: Path) -> None:
    text = CLASS.format(count=24).replace("ip_host: 10", "ip_host: 150").replace(
        "ephemeral: true", "ephemeral: true\n    hue: red")
    path = write_infra(tmp_path, text)
    result = run(str(path))
    assert result.code == 2
    assert not (tmp_path / "inventory").exists()
    lines = [line.replace(str(tmp_path) + "/", "") for line in result.err.splitlines()]
    assert len(lines) == 2, lines
    assert lines[0] == ("infra.yml:16: domain_templates.student.hue: unknown key 'hue' "
                        "(in student01 and 23 more); remove it or use one of: "
                        # The domain's keys, as the schema lists them (ADR-084, ADR-086,
                        # ADR-090 add).
                        + ", ".join(schema.keys("domain")))
    assert lines[1].startswith(
        "infra.yml:20: domain_templates.student.machines.srv.ip_host: 10.100.11.150 is inside "
        "the DHCP range 10.100.11.100-10.100.11.199 (in student01 and 23 more); ")


@pytest.mark.parametrize(("change", "expected"), [
    (("count: 3", "count: 100"),
     "infra.yml:12: domain_templates.student.count: count 100 needs more than 2 digits; "
     "set digits: 3 (or lower the count)"),
    (("count: 3", "count: 0"),
     "infra.yml:12: domain_templates.student.count: count 0 is outside 1-255; "),
    (("count: 3", "count: three"),
     "infra.yml:12: domain_templates.student.count: count must be an integer, got 'three'; "),
    (("first_subnet_id: 11", "first_subnet_id: 253"),
     "infra.yml:13: domain_templates.student.first_subnet_id: 3 domains from subnet_id 253 "
     "run to 255, beyond 254; use first_subnet_id 252 or lower"),
    (("first_subnet_id: 11", "subnet_id: 11"),
     "infra.yml:11: domain_templates.student: missing required key 'first_subnet_id'; "),
    (("first_subnet_id: 11", "first_subnet_id: 11\n    subnet_id: 4"),
     "infra.yml:14: domain_templates.student.subnet_id: a template has no single subnet_id; "),
    (("subnet_id: 0", "subnet_id: 12"),
     "infra.yml:13: domain_templates.student.first_subnet_id: subnet_id 12 is already used by "
     "domain admin (in student02); give each domain its own subnet_id"),
    (("ip_host: 10", 'ip: "10.100.11.10"'),
     "infra.yml:19: domain_templates.student.machines.srv.ip: a template machine has no fixed "
     "ip (each domain has its own subnet); write the host octet instead, e.g. ip_host: 10"),
    (("ip_host: 10", "ip_host: 254"),
     "infra.yml:19: domain_templates.student.machines.srv.ip_host: ip_host 254 is outside "
     "1-253; "),
    (("  student:\n", "  studentgroup:\n"),
     "infra.yml:11: domain_templates.studentgroup: template 'studentgroup' makes domain names "
     "like studentgroup03: 'studentgroup03' is 14 characters, more than 11"),
    (("  admin:\n", "  student02:\n"),
     "infra.yml:11: domain_templates.student: template 'student' makes a domain that is already "
     "declared (in student02); rename the template"),
    (("  admin:\n", "  student:\n"),
     "infra.yml:11: domain_templates.student: template 'student' has the name of a domain; "),
    (("      teacher:\n", "      student:\n"),
     "infra.yml:11: domain_templates.student: template 'student' has the name of a machine; "),
    (("      web: {}\n", "      web: {}\n  other:\n    count: 1\n    first_subnet_id: 12\n"),
     "infra.yml:26: domain_templates.other.first_subnet_id: subnet_id 12 is already used by "
     "domain student02 (in other01)"),
])
def test_template_errors_say_what_where_and_how_to_fix(change: tuple[str, str],
                                                       expected: str) -> None:
    text = CLASS.format(count=3).replace(*change)
    assert text != CLASS.format(count=3)
    found = errors(text)
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_a_template_must_be_a_mapping() -> None:
    found = errors(CLASS.format(count=3).split("  student:\n")[0] + "  student:\n")
    assert found == ["infra.yml:11: domain_templates.student: a template must be a mapping, got "
                     "nothing; write count:, first_subnet_id: and machines: under it"]


def test_a_policy_naming_a_template_is_written_for_each_of_its_domains() -> None:
    text = CLASS.format(count=3) + ("network_policies:\n"
                                    "  - {from: admin, to: student, protocol: tcp, ports: [22]}\n")
    policies = yaml.safe_load(bodies(text)["group_vars/all.yml"])["anklume_network_policies"]
    assert [(p["from"], p["to"], p["to_cidr"]) for p in policies] == [
        ("admin", f"student0{n}", f"10.100.{10 + n}.0/24") for n in (1, 2, 3)]


def test_domain_names_keep_their_width() -> None:
    assert expand.domain_names("s", 3, schema.default("domain_template", "digits")) == [
        "s01", "s02", "s03"]
    assert expand.domain_names("s", 2, 3) == ["s001", "s002"]


def test_a_removed_template_leaves_the_inventory_as_a_template(tmp_path: Path) -> None:
    assert sync(tmp_path, CLASS.format(count=2)).code == 0
    result = sync(tmp_path, CLASS.format(count=2).split("domain_templates:")[0])
    assert result.code == 0, result.err
    assert ("removed from the inventory: inventory/student.yml (template student is no longer "
            "in infra.yml") in result.out
    assert not (tmp_path / "inventory" / "student.yml").exists()
    assert "removed from the inventory: inventory/student01.yml (domain student01" in result.out
