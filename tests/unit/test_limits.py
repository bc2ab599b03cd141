"""Domain resource limits (ADR-086): validation, rendering, the project config, and Incus's
refusals explained in one line (the collection's project_limits.explain, which make disp
uses too)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.module_utils import project_limits
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)
from anklume import limits, render, validate, yamlload
from tests.unit.gen_support import refused_in_one_line

pytestmark = pytest.mark.unit

SHARE = 'limits.memory: "1GiB", limits.cpu: "1", limits.processes: "500"'


def infra(budget: str = "{cpu: 4, memory: 4GiB, processes: 2000}", one: str = SHARE,
          two: str = SHARE, extra: str = "", glob: str = "") -> str:
    return f"""\
project_name: t
global:
  base_subnet: "10.100"
{glob}domains:
  pro:
    subnet_id: 2
    limits: {budget}
{extra}    machines:
      pro-one:
        config: {{{one}}}
      pro-two:
        config: {{{two}}}
"""


BAD: list[tuple[str, str, list[str], int]] = [
    ("memory not a size", infra(budget="{memory: 4Gb}"),
     ["domains.pro.limits.memory: memory '4Gb' is not a size", 'memory: "4GiB"'], 7),
    ("disk a percentage", infra(budget="{disk: 50%}"),
     ["domains.pro.limits.disk: disk '50%' is not a size"], 7),
    ("cpu zero", infra(budget="{cpu: 0}"),
     ["domains.pro.limits.cpu: cpu 0 is not a positive whole number", "cpu: 4"], 7),
    ("cpu a set", infra(budget='{cpu: "0-3"}'),
     ["domains.pro.limits.cpu: cpu '0-3' is not a positive whole number"], 7),
    ("processes not a number", infra(budget="{processes: many}"),
     ["domains.pro.limits.processes: processes 'many' is not a positive whole number"], 7),
    ("unknown limit", infra(budget="{memroy: 1GiB}"),
     ["domains.pro.limits.memroy: unknown limit 'memroy'", "did you mean 'memory'?"], 7),
    ("limits not a mapping", infra(budget="4GiB"),
     ["domains.pro.limits: expected a mapping"], 7),
    ("machines' memory over the budget",
     infra(budget="{memory: 1536MiB}"),
     ["domains.pro.limits.memory: the machines of domain pro take 2GiB of memory, more than "
      "its budget 1536MiB", "raise limits.memory of the domain or lower the machines' shares"],
     7),
    ("machines' cpu over the budget", infra(budget="{cpu: 1}"),
     ["domains.pro.limits.cpu: the machines of domain pro take 2 of cpu"], 7),
    ("preloaded disposables count in the budget",
     infra(budget="{memory: 2GiB}", extra="    disposables: {preload: 2}\n"),
     ["the machines of domain pro take 3GiB of memory, with 2 preloaded disposable(s) at "
      "512MiB each, more than its budget 2GiB"], 7),
    ("a machine without its memory share",
     infra(one='limits.cpu: "1", limits.processes: "500"'),
     ["domains.pro.machines.pro-one: machine pro-one states no limits.memory while its domain "
      "limits memory (Incus refuses such an instance)",
      'add config: {limits.memory: "1GiB"}'], 9),
    ("a machine without a root disk size",
     infra(budget="{disk: 20GiB}").replace(
         "      pro-two:\n", "      pro-two:\n        devices: {root: {type: disk, path: /, "
         "pool: default, size: 4GiB}}\n"),
     ["domains.pro.machines.pro-one: machine pro-one states no root disk size",
      "devices: {root: {type: disk, path: /, pool: default, size:"], 9),
    ("a share Incus cannot add up",
     infra(one='limits.memory: "50%", limits.cpu: "1", limits.processes: "500"'),
     ["domains.pro.machines.pro-one.config.limits.memory: '50%' is not an amount Incus can "
      "add up"], 10),
    ("a vm in a domain that limits processes",
     infra().replace("      pro-two:\n", "      pro-two:\n        type: vm\n"),
     ["domains.pro.machines.pro-two: machine pro-two is a vm in a domain that limits "
      "processes", "make the machine type lxc"], 11),
    ("a template's domains each without the share",
     """\
project_name: t
domains: {}
domain_templates:
  student:
    count: 24
    first_subnet_id: 11
    limits: {memory: 2GiB}
    machines:
      desk: {}
""",
     ["domain_templates.student.machines.desk: machine student01-desk states no "
      "limits.memory", "(in student01 and 23 more)"], 9),
]


@pytest.mark.parametrize(("text", "expected", "line"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_a_bad_budget_exits_2_in_one_line_and_writes_nothing(
        tmp_path: Path, text: str, expected: list[str], line: int) -> None:
    refused_in_one_line(tmp_path, text, expected, line)


def _all_vars(text: str) -> dict[str, object]:
    infra_, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    loaded: dict[str, object] = yaml.safe_load(render.render(infra_)["group_vars/all.yml"])
    return loaded


def test_the_budget_renders_in_the_record_and_the_project_config() -> None:
    text = infra(budget='{cpu: 4, memory: 4GiB, processes: 2000}')
    domains = _all_vars(text)["anklume_domains"]
    assert isinstance(domains, dict)
    assert domains["pro"]["limits"] == {"cpu": "4", "memory": "4GiB", "processes": "2000"}
    (project,) = ds.projects(domains, {"features.profiles": "true"}, "default")
    assert project["config"] == {"features.profiles": "true", "limits.cpu": "4",
                                 "limits.memory": "4GiB", "limits.processes": "2000"}


def test_a_domain_without_a_budget_has_no_project_limits() -> None:
    domains = _all_vars(infra().replace("    limits: {cpu: 4, memory: 4GiB, processes: 2000}\n",
                                        ""))["anklume_domains"]
    assert isinstance(domains, dict)
    assert domains["pro"]["limits"] == {}
    (project,) = ds.projects(domains, {}, "default")
    assert project["config"] == {}


def test_the_project_module_owns_exactly_the_budget_keys() -> None:
    # A limit the domain drops is removed from the project; the others' keys are left.
    from ansible_collections.anklume.incus.plugins.modules import incus_project
    assert tuple(f"limits.{k}" for k in ds.LIMIT_KEYS) == incus_project.Projects.OWNED_KEYS
    assert limits.KEYS == ds.LIMIT_KEYS == project_limits.KEYS


def test_a_hand_written_record_with_an_unknown_limit_is_one_line() -> None:
    record = {"project": "pro", "network": "net-pro", "limits": {"ram": "1GiB"}}
    with pytest.raises(ds.DesiredStateError, match=r"anklume_domains\.pro\.limits must map"):
        ds.projects({"pro": record}, {}, "default")


def test_sys_firewall_gets_its_default_share_in_a_limited_admin_domain() -> None:
    text = """\
project_name: t
global: {firewall_mode: vm}
domains:
  admin:
    subnet_id: 0
    limits: {memory: 4GiB, cpu: 2}
  pro:
    subnet_id: 2
"""
    infra_, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    (fw,) = infra_.domains[0].machines
    assert (fw.name, fw.config["limits.memory"], fw.config["limits.cpu"]) == \
        ("sys-firewall", limits.FIREWALL["memory"], limits.FIREWALL["cpu"])


def test_a_profile_share_counts_and_template_domains_each_get_the_budget() -> None:
    text = """\
project_name: t
domains: {}
domain_templates:
  student:
    count: 3
    first_subnet_id: 11
    limits: {memory: 2GiB}
    profiles:
      small: {config: {limits.memory: 1GiB}}
    machines:
      desk: {profiles: [default, small]}
"""
    domains = _all_vars(text)["anklume_domains"]
    assert isinstance(domains, dict)
    assert [d["limits"] for d in domains.values()] == [{"memory": "2GiB"}] * 3


def test_disposables_get_the_documented_defaults() -> None:
    budget = {"memory": "4GiB", "cpu": "2", "processes": "1000", "disk": "20GiB"}
    assert limits.disposable_config(budget) == {
        "limits.memory": "512MiB", "limits.cpu": "1", "limits.processes": "500"}
    assert limits.disposable_root_size(budget) == "2GiB"
    assert limits.disposable_config({"memory": "1GiB"}) == {"limits.memory": "512MiB"}
    assert limits.disposable_config({}) == {} and limits.disposable_root_size({}) is None


@pytest.mark.parametrize(("raw", "want"), [
    ({"disposables": True}, 0), ({"disposables": {"preload": 3}}, 3),
    ({"disposables": {"preload": "3"}}, 0), ({"disposables": None}, 0), (None, 0),
    ({"disposables": {"preload": True}}, 0), ({}, 0)])
def test_preload_is_read_defensively(raw: object, want: int) -> None:
    assert limits.preload(raw) == want


# Incus 6.0.4's own texts, met on this host: through `incus create`/`incus project set`
# ("Error: " prefix) and through the modules (our step, then Incus's text), see
# tests/integration/test_limits.py.
REACHED = ('creating instance t28la-two in project t28la: Failed checking if instance '
           'creation allowed: Reached maximum aggregate value "256MiB" for "limits.memory" in '
           'project "t28la"')
REACHED_CLI = ('Error: Failed checking if instance creation allowed: Reached maximum aggregate '
               'value "2" for "limits.cpu" in project "t28lx"')
REACHED_UPDATE = ('updating instance t28lx1: Failed checking if instance update allowed: '
                  'Reached maximum aggregate value "256MiB" for "limits.memory" in project '
                  '"t28lx"')
NO_KEY = ('updating project t28lb: Instance "t28lb-one" in project "t28lb" has no '
          '"limits.memory" config, either directly or via a profile')
NO_KEY_CREATE = ('Error: Failed checking if instance creation allowed: Failed getting usage of '
                 'project entities: Instance "t28lx1" in project "t28lx" has no '
                 '"limits.processes" config, either directly or via a profile')
NO_SIZE = ('Error: Instance "t28lx1" in project "t28lx" has no "size" config set on the root '
           'device either directly or via a profile')
TOO_LOW = 'updating project t28lx: "limits.memory" is too low: current total is "192.0MiB"'
UNPARSED = ('Error: Failed checking if instance creation allowed: Failed getting usage of '
            'project entities: Failed parsing "limits.memory" for instance "t28lx3" in '
            'project "t28lx"')
OTHERS = ['Error: Project feature "features.storage.buckets" cannot be disabled on non-empty '
          'projects',
          'Error: Failed creating instance record: Instance type "virtual-machine" is not '
          'supported on this server: vhost_vsock kernel module not loaded',
          "creating instance web in project pro: Image not found"]


def test_explain_turns_a_budget_refusal_into_one_line() -> None:
    line = project_limits.explain(REACHED, "t28la", {"memory": "256MiB"})
    assert line == (
        "domain t28la: instance t28la-two does not fit its memory budget (memory: 256MiB, "
        "Incus's limits.memory of project t28la), which its instances already use, "
        "disposables and hand-made ones included; fix: delete the instances infra.yml does "
        "not declare (incus list --project t28la), lower limits.memory of its machines, or "
        "raise domains.t28la.limits.memory")
    assert "instance t28lx1 does not fit its memory budget" in str(
        project_limits.explain(REACHED_UPDATE, "t28lx", {}))
    assert "domain t28lx: an instance does not fit its cpu budget (cpu: 2," in str(
        project_limits.explain(REACHED_CLI, "t28lx", {"cpu": "2"}))


@pytest.mark.parametrize(("text", "want"), [
    (NO_KEY, "domain t28lb: Incus refuses its memory budget while instance t28lb-one has no "
             "limits.memory"),
    (NO_KEY_CREATE, "domain t28lx: Incus refuses its processes budget while instance t28lx1 "
                    "has no limits.processes"),
    (NO_SIZE, "domain t28lx: Incus refuses its disk budget while instance t28lx1 has no root "
              "disk size"),
    (TOO_LOW, "domain t28lx: Incus refuses its memory budget (memory: 128MiB): its instances "
              "already use 192.0MiB"),
    (UNPARSED, "domain t28lx: limits.memory of instance t28lx3 is not an amount Incus can add "
               "up"),
])
def test_explain_names_the_domain_limit_and_fix_of_each_refusal(text: str, want: str) -> None:
    line = project_limits.explain(text, None, {"memory": "128MiB"})
    assert line is not None and line.startswith(want), line
    assert "fix: " in line and "\n" not in line


@pytest.mark.parametrize("text", OTHERS)
def test_explain_leaves_other_errors_alone(text: str) -> None:
    assert project_limits.explain(text, "pro", {"memory": "1GiB"}) is None
    assert project_limits.explain(text) is None
