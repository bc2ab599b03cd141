"""Every default has one home, anklume/schema.py; the copies elsewhere are pinned to it.

The model's dataclasses and the validator read the schema's defaults; the Ansible side
(role defaults, the desired-state rules) cannot import the generator, so these tests fail
the day one of its copies drifts. The rules the two sides share (bridge prefix, GPU,
inherited ephemeral, parallel) are pinned in test_one_home.py; each role's argument spec is
pinned to its defaults/main.yml at the end of this file.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

from anklume import checks, model, schema, validate, yamlload
from anklume.disposables import Disposables
from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit

# Model fields that hold a schema default in another form, and how to convert it.
CONVERTED = {
    ("global", "dhcp_range"): checks.dhcp_range,
    ("global", "disposable_range"): checks.dhcp_range,
    # `false` (make disp refuses the domain) is None in the model.
    ("domain", "disposables"): lambda value: None if value is False else value,
    ("domain", "profiles"): dict,
    ("domain", "machines"): list,
    ("network_policy", "ports"): tuple,
    ("egress_rule", "ports"): tuple,
    # `egress: open` is an Egress of mode open in the model (ADR-093).
    ("domain", "egress"): model.Egress,
}
# Schema keys that are not a field of their section's dataclass (or not by that name).
# A domain's snapshot keys are the defaults of its machines' (test_derived_defaults_...).
# `allow_empty` only lets the validator accept a file without domains (test_empty_infra.py).
NOT_FIELDS = {("top", "global"), ("top", "domains"), ("top", "network_policies"),
              ("top", "allow_empty"),
              ("domain", "snapshots_schedule"), ("domain", "snapshots_expiry")}
# A domain's `nat` left out stays None in the model: the networks role decides.
ROLE_DECIDES = {("domain", "nat")}


def _objects() -> dict[str, Any]:
    """One object per schema section, built with the model's own defaults."""
    infra = model.Infra()
    return {"top": infra, "global": infra, "domain": model.Domain("d", 0),
            "profile": model.Profile("p"), "machine": model.Machine("m", "d"),
            "disposables": Disposables(),
            "network_policy": model.Policy("a", "domain", "x", "b", "domain", "y"),
            "egress_rule": model.EgressRule("198.51.100.10"),
            "file_policy": model.FilePolicy("a", "domain", "b", "domain"),
            "clipboard_policy": model.FilePolicy("a", "domain", "b", "domain")}


# Template sections have no dataclass: they expand into domains and machines (anklume/expand.py,
# whose digits default test_expand.py pins).
EXPANDED = {"domain_template", "template_machine"}


def _literal_keys() -> list[tuple[str, str]]:
    return [(section, k.name) for section, keys in schema.SECTIONS.items() for k in keys
            if not isinstance(k.default, schema.Derived) and (section, k.name) not in NOT_FIELDS
            and section not in EXPANDED]


def _expected(section: str, name: str) -> Any:
    convert = CONVERTED.get((section, name), lambda value: value)
    return convert(schema.default(section, name))


@pytest.mark.parametrize(("section", "name"), _literal_keys())
def test_the_models_default_is_the_schemas(section: str, name: str) -> None:
    assert getattr(_objects()[section], name) == _expected(section, name)


MINIMAL = """\
domains:
  d:
    subnet_id: 1
    profiles:
      p: {}
    machines:
      m: {}
network_policies:
  - {from: d, to: d}
"""


def _validated() -> dict[str, Any]:
    infra, _ = validate.validate(yamlload.load_text(MINIMAL, "infra.yml"))
    [domain] = infra.domains
    text = MINIMAL.replace("    subnet_id: 1\n", "    subnet_id: 1\n    disposables: {}\n")
    allowing, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return {"top": infra, "global": infra, "domain": domain, "profile": domain.profiles["p"],
            "machine": domain.machines[0], "network_policy": infra.policies[0],
            "disposables": allowing.domains[0].disposables,
            "file_policy": _file_policy(), "clipboard_policy": _file_policy("clipboard"),
            "egress_rule": _egress_rule()}


def _egress_rule() -> model.EgressRule:
    """An egress entry with `to` only (ADR-093)."""
    text = MINIMAL.replace("    subnet_id: 1\n",
                           "    subnet_id: 1\n    egress: [{to: 198.51.100.1}]\n")
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return infra.domains[0].egress.rules[0]


def _file_policy(kind: str = "file") -> model.FilePolicy:
    """A file_policies (or clipboard_policies) entry that leaves out every key it may
    (MINIMAL keeps the top level's own default, no entry)."""
    infra, _ = validate.validate(yamlload.load_text(
        MINIMAL + f"{kind}_policies:\n  - {{from: d, to: d}}\n", "infra.yml"))
    return (infra.clipboard_policies if kind == "clipboard" else infra.file_policies)[0]


@pytest.mark.parametrize(("section", "name"), _literal_keys())
def test_a_left_out_key_validates_to_the_schemas_default(section: str, name: str) -> None:
    value = getattr(_validated()[section], name)
    if (section, name) in ROLE_DECIDES:
        assert value is None
    elif (section, name) == ("global", "admin_domain"):
        assert value == ""  # no domain has the default's name (test_admin_domain_...)
    elif (section, name) in {("domain", "profiles"), ("domain", "machines")}:
        assert value  # MINIMAL declares one of each
    else:
        assert value == _expected(section, name)


def test_derived_defaults_come_from_the_domain_and_global() -> None:
    text = MINIMAL.replace("    subnet_id: 1\n", "    subnet_id: 1\n    ephemeral: true\n"
                           "    snapshots_schedule: '@daily'\n    snapshots_expiry: 2w\n")
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    machine = infra.domains[0].machines[0]
    assert (machine.ephemeral, machine.snapshots_schedule, machine.snapshots_expiry) == (
        True, "@daily", "2w")
    assert machine.os_image == schema.default("global", "default_os_image")


def test_admin_domain_left_out_is_the_default_when_such_a_domain_exists() -> None:
    text = MINIMAL.replace("  d:", "  admin:").replace("from: d, to: d", "from: admin, to: admin")
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    assert infra.admin_domain == schema.default("global", "admin_domain")


def test_schema_defaults_are_fresh_copies() -> None:
    schema.default("machine", "profiles").append("x")
    assert schema.default("machine", "profiles") == ["default"]
    assert model.Machine("a", "d").profiles is not model.Machine("b", "d").profiles


# -- the Ansible side's copies ---------------------------------------------------------------

# Role fallbacks `anklume_X | default(...)` for variables `make sync` writes from a schema key.
GENERATED = {
    "anklume_project_name": ("top", "project_name"),
    "anklume_default_os_image": ("global", "default_os_image"),
    "anklume_incus_remote": ("global", "incus_remote"),
    "anklume_isolation": ("global", "isolation"),
    "anklume_admin_domain": ("global", "admin_domain"),
    "anklume_network_policies": ("top", "network_policies"),
}


def _role_fallbacks() -> list[tuple[str, str, str]]:
    found = []
    paths = [REPO / "site.yml", REPO / "snapshot.yml", REPO / "nftables.yml",
             *REPO.glob("roles/*/defaults/*.yml"), *REPO.glob("roles/*/vars/*.yml"),
             *REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/templates/*.j2")]
    for path in paths:
        if path.exists():
            for var, text in re.findall(r"(anklume_\w+) \| default\(([^)]*)\)", path.read_text()):
                if var in GENERATED:
                    found.append((path.relative_to(REPO).as_posix(), var, text))
    return found


def test_role_fallbacks_are_found() -> None:
    assert {var for _, var, _ in _role_fallbacks()} >= {"anklume_project_name",
                                                        "anklume_default_os_image"}


@pytest.mark.parametrize(("path", "var", "text"), _role_fallbacks())
def test_a_role_fallback_is_the_schemas_default(path: str, var: str, text: str) -> None:
    assert yaml.safe_load(text) == schema.default(*GENERATED[var]), f"{path}: {var}"


def _yaml(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / rel).read_text())
    return data


def test_nat_left_out_is_true_as_documented() -> None:
    key = schema.keys("domain")["nat"]
    assert isinstance(key.default, schema.Derived)
    assert _yaml("roles/incus_networks/defaults/main.yml")["incus_networks_nat"] is (
        yaml.safe_load(key.default.text))


def test_a_hand_written_host_gets_the_schemas_machine_defaults() -> None:
    assert schema.default("machine", "type") == ds.MACHINE_TYPE
    assert list(ds.MACHINE_PROFILES) == schema.default("machine", "profiles")


# -- a role's argument spec documents its defaults/main.yml ----------------------------------

_MISSING = "<no default>"


def _role_options() -> list[tuple[str, str, str, Any]]:
    """(role, entry point, option, its spec) for every option of every role's argument spec."""
    found = []
    for spec_path in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        role = spec_path.parts[-3]
        for entry, spec in yaml.safe_load(spec_path.read_text())["argument_specs"].items():
            for name, option in (spec.get("options") or {}).items():
                found.append((role, entry, name, option))
    return found


def _role_defaults(role: str) -> dict[str, Any]:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


@pytest.mark.parametrize(("role", "entry", "name", "option"), _role_options(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_an_argument_spec_default_is_the_roles_default_as_written(
        role: str, entry: str, name: str, option: dict[str, Any]) -> None:
    """The rule: an option's spec ``default`` is exactly the value defaults/main.yml gives it,
    a Jinja expression included, copied as written (Ansible templates the spec's default when
    it validates the role's arguments, so the text must be the expression itself; the role's
    variable still comes from defaults/main.yml). An option defaults/main.yml leaves unset has
    no spec default."""
    assert option.get("default", _MISSING) == _role_defaults(role).get(name, _MISSING), (
        f"roles/{role}/meta/argument_specs.yml ({entry}): {name}")


@pytest.mark.parametrize("role", sorted({role for role, _, _, _ in _role_options()}))
def test_every_role_default_is_an_option_of_its_main_entry_point(role: str) -> None:
    main = {name for r, entry, name, _ in _role_options() if r == role and entry == "main"}
    assert set(_role_defaults(role)) <= main, role
