"""Each rule has one home per side: the generator (anklume/) and the collection (plugins/,
roles/) are installed apart, so where the collection keeps a copy, a test here pins the two.

- the bridge prefix: anklume.model.NETWORK_PREFIX and the incus_network module's `prefix`;
- "does this machine use a GPU": anklume.model.has_gpu_device / uses_gpu and
  desired_state.has_gpu_device (a hand-written host's gpu device is not added twice);
- a machine's `ephemeral` left out is its domain's: anklume.model.machine_ephemeral and
  desired_state.is_ephemeral (a hand-written host has no instance_ephemeral);
- Incus operations run at a time: incus_client.DEFAULT_PARALLEL and its copies.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.module_utils import incus_client
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)
from anklume import checks, model, render, schema, validate, yamlload
from anklume.ops import power
from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit


def _module(name: str) -> Any:
    return importlib.import_module(f"ansible_collections.anklume.incus.plugins.modules.{name}")


def _validated(text: str) -> tuple[model.Infra, dict[str, Any]]:
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return infra, render.render(infra)


# -- the bridge prefix -----------------------------------------------------------------------

def test_the_network_module_prefix_is_the_generators() -> None:
    spec = _module("incus_network").ARGUMENT_SPEC["prefix"]
    assert spec["default"] == model.NETWORK_PREFIX
    assert checks.DOMAIN_MAX + len(model.NETWORK_PREFIX) == checks.IFNAME_MAX


def test_the_networks_role_leaves_the_prefix_to_the_module() -> None:
    defaults = yaml.safe_load((REPO / "roles/incus_networks/defaults/main.yml").read_text())
    assert "incus_networks_prefix" not in defaults
    for task in ("main", "prune"):
        text = (REPO / f"roles/incus_networks/tasks/{task}.yml").read_text()
        assert 'prefix: "{{ incus_networks_prefix | default(omit) }}"' in text, task


# -- does this machine use a GPU ---------------------------------------------------------------

GPU_INFRA = """\
global: {gpu_policy: shared}
domains:
  ai:
    subnet_id: 3
    profiles:
      with-gpu: {devices: {card: {type: gpu}}}
      plain: {config: {limits.cpu: "2"}}
    machines:
      flag: {gpu: true}
      own-device: {devices: {card: {type: gpu}}}
      by-profile: {profiles: [default, with-gpu]}
      other-profile: {profiles: [default, plain]}
      none: {}
"""


def test_the_gpu_device_rule_is_the_same_on_both_sides() -> None:
    infra, bodies = _validated(GPU_INFRA)
    [domain] = infra.domains
    record = yaml.safe_load(bodies["group_vars/all.yml"])["anklume_domains"]["ai"]
    for m in domain.machines:
        hostvars = yaml.safe_load(bodies[f"host_vars/{m.name}.yml"])
        assert ds.has_gpu_device(hostvars, record) is model.has_gpu_device(m, domain), m.name
        assert hostvars["instance_gpu"] is model.uses_gpu(m, domain), m.name
    assert [m.name for m in domain.machines if model.uses_gpu(m, domain)] == [
        "flag", "own-device", "by-profile"]


# -- a machine's ephemeral left out ------------------------------------------------------------

@pytest.mark.parametrize("domain_says", [True, False])
@pytest.mark.parametrize("machine_says", [True, False, None])
def test_ephemeral_is_inherited_alike_on_both_sides(domain_says: bool,
                                                    machine_says: bool | None) -> None:
    declared = "{}" if machine_says is None else f"{{ephemeral: {str(machine_says).lower()}}}"
    infra, bodies = _validated(f"domains:\n  d:\n    subnet_id: 1\n    ephemeral: "
                               f"{str(domain_says).lower()}\n    machines:\n      m: {declared}\n")
    [domain] = infra.domains
    record = yaml.safe_load(bodies["group_vars/all.yml"])["anklume_domains"]["d"]
    hostvars = yaml.safe_load(bodies["host_vars/m.yml"])
    assert domain.machines[0].ephemeral is model.machine_ephemeral(domain, machine_says)
    assert ds.is_ephemeral(hostvars, record) is domain.machines[0].ephemeral
    # A hand-written host (no instance_ephemeral) declares nothing: its domain's.
    assert ds.is_ephemeral({}, record) is model.machine_ephemeral(domain)


def test_a_record_without_ephemeral_is_the_schemas_default() -> None:
    assert ds.is_ephemeral({}, {}) is schema.default("domain", "ephemeral")


# -- Incus operations run at a time ------------------------------------------------------------

PARALLEL_FALLBACK = re.compile(r"anklume_incus_parallel \| default\((\d+)\)")


def _parallel_fallbacks() -> list[tuple[str, int]]:
    paths = [REPO / "site.yml", REPO / "snapshot.yml", *REPO.glob("roles/*/defaults/*.yml"),
             *REPO.glob("roles/*/meta/argument_specs.yml")]
    return [(p.relative_to(REPO).as_posix(), int(n)) for p in paths if p.exists()
            for n in PARALLEL_FALLBACK.findall(p.read_text())]


def test_parallel_fallbacks_are_found() -> None:
    assert {path for path, _ in _parallel_fallbacks()} >= {
        "site.yml", "roles/incus_instances/defaults/main.yml",
        "roles/incus_snapshots/defaults/main.yml"}


def test_every_parallel_default_is_the_clients() -> None:
    expected = incus_client.DEFAULT_PARALLEL
    assert expected == power.DEFAULT_PARALLEL
    assert {path: n for path, n in _parallel_fallbacks() if n != expected} == {}
    for name in ("incus_instance", "incus_ready", "incus_snapshot", "provision_check"):
        assert _module(name).ARGUMENT_SPEC["parallel"]["default"] == expected, name
    targets = (REPO / "anklume" / "ops" / "targets.py").read_text()
    assert f"Incus operations run at a time (default {expected})" in targets


# -- retired keys and dead output ---------------------------------------------------------------

OLD_FILE = """\
global:
  default_connection: community.general.incus
domains:
  d:
    subnet_id: 1
"""


def test_a_retired_key_warns_once_and_still_syncs() -> None:
    infra, warnings = validate.validate(yamlload.load_text(OLD_FILE, "infra.yml"))
    assert [w.render() for w in warnings] == [
        "infra.yml:2: global.default_connection: no longer read (the playbooks always connect "
        "through anklume.incus.anklume_incus); remove it"]
    assert [d.name for d in infra.domains] == ["d"]


def test_a_retired_key_is_no_schema_key() -> None:
    for section, retired in schema.RETIRED.items():
        assert not set(retired) & set(schema.keys(section)), section


def test_the_site_playbook_names_the_connection_the_retired_key_claimed() -> None:
    assert "anklume.incus.anklume_incus" in (REPO / "site.yml").read_text()


DEAD = ("anklume_base_subnet", "anklume_default_connection", "anklume_default_user",
        "anklume_domain", "anklume_domain_network", "anklume_domain_gateway")


def test_no_variable_nothing_reads_is_written() -> None:
    _, bodies = _validated(GPU_INFRA)
    written = {key for body in bodies.values() for key in (yaml.safe_load(body) or {})}
    assert not written & set(DEAD)


# -- the machines the provision play runs on --------------------------------------------------

PROVISION_INFRA = """\
domains:
  pro:
    subnet_id: 1
    machines:
      pro-dev: {type: lxc, roles: [base_system]}
      pro-web: {type: lxc}
  perso:
    subnet_id: 2
    machines:
      perso-box: {type: lxc}
"""


def test_the_provision_group_holds_exactly_the_machines_with_roles() -> None:
    _, bodies = _validated(PROVISION_INFRA)
    pro = yaml.safe_load(bodies["inventory/pro.yml"])["all"]["children"]
    perso = yaml.safe_load(bodies["inventory/perso.yml"])["all"]["children"]
    assert pro[model.PROVISION_GROUP] == {"hosts": {"pro-dev": {}}}
    assert perso[model.PROVISION_GROUP] == {}
    # Every machine stays in its domain's group (LIMIT=, DOMAIN=, the infra play).
    assert pro["pro"] == {"hosts": {"pro-dev": {}, "pro-web": {}}}


def test_the_provision_plays_run_on_the_generators_groups() -> None:
    """The check on the machines with roles; the provision play on the group the check
    fills, which the generator writes empty (an unknown pattern would warn every run)."""
    plays = yaml.safe_load((REPO / "site.yml").read_text())
    provision = [p for p in plays if "provision" in p.get("tags", [])]
    assert [p["hosts"] for p in provision] == [model.PROVISION_GROUP, model.PROVISION_DUE_GROUP]
    adds = [t["ansible.builtin.add_host"] for t in provision[0]["tasks"]
            if "ansible.builtin.add_host" in t]
    assert adds == [{"name": "{{ anklume_due_host }}", "groups": [model.PROVISION_DUE_GROUP]}]
    for group in (model.PROVISION_GROUP, model.PROVISION_DUE_GROUP):
        assert checks._DOMAIN_RE.match(group) is None  # no domain can take it


def test_the_gpu_and_vm_groups_hold_exactly_those_machines() -> None:
    _, bodies = _validated(GPU_INFRA)
    ai = yaml.safe_load(bodies["inventory/ai.yml"])["all"]["children"]
    # The same machines the GPU check's filter picks (instance_gpu, test above).
    assert sorted(ai[model.GPU_GROUP]["hosts"]) == ["by-profile", "flag", "own-device"]
    assert model.VM_GROUP not in ai  # written only where a domain has a VM
    _, bodies = _validated(PROVISION_INFRA.replace("pro-web: {type: lxc}", "pro-web: {type: vm}"))
    pro = yaml.safe_load(bodies["inventory/pro.yml"])["all"]["children"]
    perso = yaml.safe_load(bodies["inventory/perso.yml"])["all"]["children"]
    assert pro[model.VM_GROUP] == {"hosts": {"pro-web": {}}}
    assert model.GPU_GROUP not in pro and model.VM_GROUP not in perso


def test_the_gpu_and_vm_checks_are_gated_on_the_generators_groups() -> None:
    infra = next(p for p in yaml.safe_load((REPO / "site.yml").read_text())
                 if "infra" in p.get("tags", []))
    include = "ansible.builtin.include_role"
    checks_task = next(t for t in infra["tasks"] if include in t
                       and t.get("loop_control", {}).get("loop_var") == "anklume_capability_check")
    # One looped include: each check is in the loop only when its group meets the play.
    for role, group in (("incus_gpu", model.GPU_GROUP), ("incus_vm_check", model.VM_GROUP)):
        assert f"(['{role}'] if groups['{group}'] | default([]) | intersect(" \
            f"ansible_play_hosts_all) else [])" in checks_task["loop"]
    for group in (model.GPU_GROUP, model.VM_GROUP):
        assert checks._DOMAIN_RE.match(group) is None  # no domain can take it


# -- where the firewall watchdog keeps its pid file --------------------------------------------

def test_the_watchdog_stop_looks_where_the_watchdog_writes() -> None:
    """The role tests for the pid file in the controller before starting a Python to stop
    a watchdog: its path must be the one scripts/firewall_watchdog.py writes."""
    spec = importlib.util.spec_from_file_location("firewall_watchdog",
                                                  REPO / "scripts" / "firewall_watchdog.py")
    assert spec is not None and spec.loader is not None
    watchdog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(watchdog)
    args = watchdog.parse(["stop", "--project=PROJ", "--instance=sys-firewall", "--run-dir=/R"])
    written = str(watchdog.pidfile(args))
    tasks = (REPO / "roles/incus_firewall/tasks/main.yml").read_text()
    assert "incus_firewall__stale_pid is file" in tasks
    role_vars = yaml.safe_load((REPO / "roles/incus_firewall/vars/main.yml").read_text())
    tested = role_vars["incus_firewall__stale_pid"].strip()
    assert tested == ("{{ incus_firewall_run_dir }}/firewall-watchdog-"
                      "{{ incus_firewall_admin_project | trim }}-sys-firewall.pid")
    assert written == "/R/firewall-watchdog-PROJ-sys-firewall.pid"


def test_the_disposable_marker_is_one_key_on_both_sides() -> None:
    """make disp marks its instances; the instances module must know the same key, or an
    apply with PRUNE=1 would delete a disposable in use as an orphan."""
    from anklume.ops import disp_live
    assert _module("incus_instance").DISPOSABLE_KEY == disp_live.MARK


def test_the_gui_session_device_is_one_name_on_both_sides() -> None:
    """make gui adds its proxy device; the instances module keeps a device of that name, or
    an apply would cut every running gui session (ADR-091)."""
    from anklume import model
    assert _module("incus_instance").GUI_DEVICE == model.GUI_DEVICE


def test_the_pre_apply_snapshot_name_is_one_on_both_sides() -> None:
    """An apply names its snapshots; make rollback finds the newest by the same prefix."""
    from anklume.ops import rollback
    assert _module("incus_instance").PRE_APPLY == rollback.PRE_APPLY
