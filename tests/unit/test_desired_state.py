"""ADR-055: the Incus objects infra.yml asks for, computed in Python from the generated vars.

plugins/plugin_utils/desired_state.py holds the rules the roles used to compose as JSON
text in Jinja: the eth0 override, the protection flag, the snapshot keys, the admin socket
proxy, NAT per domain, the names the ownership check guards, where a host's instance lives.
"""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.filter import desired_state as filters
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

from tests.incus_helpers import REPO
from tests.unit.gen_support import VALID, sync

pytestmark = pytest.mark.unit

FILTERS = "ansible_collections.anklume.incus.plugins.filter"
ADMIN_DEVICE = ds.admin_socket_device("/var/lib/incus/unix.socket", "/var/lib/incus-host.sock")
# The anti-spoofing keys every eth0 anklume creates carries (ADR-059).
FILTERS_ON = ds.nic_filters(True)


def _domain(name: str, sid: int, **extra: Any) -> dict[str, Any]:
    """A domain record as `make sync` writes it (docs/generated-vars.md)."""
    return {"description": "", "subnet_id": sid, "project": name, "network": f"net-{name}",
            "subnet": f"10.100.{sid}.0/24", "gateway": f"10.100.{sid}.254",
            "dhcp_range": f"10.100.{sid}.100-10.100.{sid}.199", "ephemeral": False, "nat": None,
            "profiles": {}, "machines": [], **extra}


def _host(name: str, domain: str, **extra: Any) -> dict[str, Any]:
    """host_vars/<machine>.yml as `make sync` writes it."""
    return {"instance_name": name, "instance_domain": domain, "instance_description": "",
            "instance_type": "lxc", "instance_ip": "", "instance_os_image": "anklume/debian-12",
            "instance_profiles": ["default"], "instance_config": {}, "instance_devices": {},
            "instance_ephemeral": False, "instance_snapshots_schedule": "",
            "instance_snapshots_expiry": "", **extra}


DOMAINS = {"admin": _domain("admin", 0, machines=["adm"]),
           "pro": _domain("pro", 2, machines=["dev"], ephemeral=True)}


def _instances(hostvars: dict[str, Any], domains: dict[str, Any] = DOMAINS,
               **kwargs: Any) -> dict[str, dict[str, Any]]:
    out = ds.instances(list(hostvars), hostvars, domains, "anklume/debian-12", **kwargs)
    return {i["name"]: i for i in out}


# -- bridges -----------------------------------------------------------------------------

def test_a_bridge_per_domain_with_gateway_dhcp_and_no_ipv6() -> None:
    [net] = ds.networks({"pro": _domain("pro", 2, description="Work")}, True, "none", {})
    assert net == {"name": "net-pro", "description": "anklume domain pro: Work", "config": {
        "ipv4.address": "10.100.2.254/24", "ipv4.nat": "true",
        "ipv4.dhcp.ranges": "10.100.2.100-10.100.2.199", "ipv6.address": "none"}}


@pytest.mark.parametrize(("domain_nat", "role_nat", "expected"), [
    (None, True, "true"), (None, False, "false"), (False, True, "false"),
    (True, False, "true"), ("no", True, "false"), (None, "yes", "true")])
def test_nat_is_the_domains_when_it_says_else_the_roles(domain_nat: Any, role_nat: Any,
                                                        expected: str) -> None:
    [net] = ds.networks({"pro": _domain("pro", 2, nat=domain_nat)}, role_nat, "none", {})
    assert net["config"]["ipv4.nat"] == expected


def test_extra_config_is_added_to_every_bridge_and_wins() -> None:
    nets = ds.networks(DOMAINS, True, "none", {"dns.domain": "lan", "ipv4.nat": "false"})
    assert [(n["config"]["dns.domain"], n["config"]["ipv4.nat"]) for n in nets] == [
        ("lan", "false"), ("lan", "false")]
    assert nets[0]["description"] == "anklume domain admin"


# -- projects and profiles ------------------------------------------------------------------

def test_a_project_per_domain_whose_default_profile_is_on_the_bridge() -> None:
    config = {"features.images": "false", "features.profiles": "true"}
    [project] = ds.projects({"pro": _domain("pro", 2, description="Work")}, config, "default")
    assert project == {"name": "pro", "description": "Work", "config": config,
                       "default_devices": {
                           "root": {"type": "disk", "path": "/", "pool": "default"},
                           "eth0": {"type": "nic", "name": "eth0", "network": "net-pro",
                                    **FILTERS_ON}}}
    assert project["config"] is not config


def test_extra_profiles_live_in_their_domains_project() -> None:
    domains = {"pro": _domain("pro", 2, project="work", profiles={
        "gpu": {"description": "", "config": {}, "devices": {"gpu": {"type": "gpu"}}},
        "bare": None})}
    assert ds.profiles(domains) == [
        {"project": "work", "name": "gpu", "description": "", "config": {},
         "devices": {"gpu": {"type": "gpu"}}},
        {"project": "work", "name": "bare", "description": "", "config": {}, "devices": {}}]
    assert ds.profile_refs(domains) == ["work/gpu", "work/bare"]


# -- instances ------------------------------------------------------------------------------

def test_a_static_address_replaces_the_machines_own_eth0() -> None:
    own = {"eth0": {"type": "nic", "network": "elsewhere"}, "data": {"type": "disk"}}
    dev = _instances({"dev": _host("dev", "pro", instance_ip="10.100.2.10",
                                   instance_devices=own)})["dev"]
    assert dev["devices"] == {
        "eth0": {"type": "nic", "name": "eth0", "network": "net-pro",
                 "ipv4.address": "10.100.2.10", **FILTERS_ON},
        "data": {"type": "disk"}}
    assert dev["ip"] == "10.100.2.10"
    assert own["eth0"] == {"type": "nic", "network": "elsewhere"}  # the variable is untouched


@pytest.mark.parametrize("ip", ["10.100.2.13", ""])
def test_a_routing_machine_gets_its_own_eth0_without_filters(ip: str) -> None:
    """allow_spoofing overrides the profile's filtered eth0, static address or DHCP."""
    dev = _instances({"gw": _host("gw", "pro", instance_ip=ip,
                                  instance_allow_spoofing=True)})["gw"]
    assert dev["devices"] == {"eth0": {
        "type": "nic", "name": "eth0", "network": "net-pro",
        **({"ipv4.address": ip} if ip else {}),
        "security.mac_filtering": "false", "security.ipv4_filtering": "false",
        "security.ipv6_filtering": "false"}}


def test_every_eth0_anklume_creates_filters_spoofing() -> None:
    """The profile's eth0 (DHCP machines) and a static eth0 both carry the three filters."""
    assert FILTERS_ON == {"security.mac_filtering": "true", "security.ipv4_filtering": "true",
                          "security.ipv6_filtering": "true"}
    [project] = ds.projects({"pro": _domain("pro", 2)}, {}, "default")
    assert FILTERS_ON.items() <= project["default_devices"]["eth0"].items()
    static = _instances({"dev": _host("dev", "pro", instance_ip="10.100.2.10",
                                      instance_allow_spoofing=False)})["dev"]
    assert FILTERS_ON.items() <= static["devices"]["eth0"].items()


def test_without_an_address_the_devices_are_the_machines() -> None:
    own = {"eth0": {"type": "nic", "network": "elsewhere"}}
    dev = _instances({"dev": _host("dev", "pro", instance_devices=own)})["dev"]
    assert dev["devices"] == own and dev["ip"] == ""


@pytest.mark.parametrize(("host_value", "domain_value", "flag"), [
    (False, True, "true"), (True, False, "false"), ("yes", False, "false"),
    ("false", True, "true"), (None, True, "true")])
def test_protection_follows_the_machines_ephemeral(host_value: Any, domain_value: bool,
                                                   flag: str) -> None:
    domains = {"pro": _domain("pro", 2, ephemeral=domain_value)}
    dev = _instances({"dev": _host("dev", "pro", instance_ephemeral=host_value)}, domains)
    assert dev["dev"]["config"]["security.protection.delete"] == flag


def test_a_host_without_ephemeral_takes_its_domains() -> None:
    host = _host("dev", "pro")
    del host["instance_ephemeral"]
    dev = _instances({"dev": host})["dev"]
    assert dev["config"]["security.protection.delete"] == "false"  # pro is ephemeral


def test_snapshot_keys_only_when_declared() -> None:
    got = _instances({
        "a": _host("a", "pro", instance_snapshots_schedule="@daily",
                   instance_snapshots_expiry="2w", instance_config={"limits.cpu": "1"}),
        "b": _host("b", "pro")})
    assert got["a"]["config"] == {"limits.cpu": "1", "security.protection.delete": "true",
                                  "snapshots.schedule": "@daily", "snapshots.expiry": "2w"}
    assert got["b"]["config"] == {"security.protection.delete": "true"}


def test_the_admin_domains_machines_get_the_host_socket() -> None:
    hosts = {"adm": _host("adm", "admin"), "dev": _host("dev", "pro")}
    got = _instances(hosts, admin_domain="admin", admin_device=ADMIN_DEVICE)
    assert got["adm"]["devices"]["incus-socket"] == {
        "type": "proxy", "bind": "instance", "connect": "unix:/var/lib/incus/unix.socket",
        "listen": "unix:/var/lib/incus-host.sock", "uid": "0", "gid": "0", "mode": "0660"}
    assert "incus-socket" not in got["dev"]["devices"]
    assert "incus-socket" not in _instances(hosts, admin_domain="",
                                            admin_device=ADMIN_DEVICE)["adm"]["devices"]


def test_the_filter_gives_the_socket_only_when_the_role_says_so() -> None:
    hosts = {"adm": _host("adm", "admin")}
    args = (list(hosts), hosts, DOMAINS, "img")
    on = filters.desired_instances(*args, admin_socket="true", admin_domain="admin",
                                   socket_host_path="/h", socket_path="/i")
    off = filters.desired_instances(*args, admin_socket=False, admin_domain="admin",
                                    socket_host_path="/h", socket_path="/i")
    assert on[0]["devices"]["incus-socket"]["connect"] == "unix:/h"
    assert "incus-socket" not in off[0]["devices"]


def test_a_hand_written_host_gets_the_machine_defaults() -> None:
    [inst] = ds.instances(["hand"], {"hand": {"instance_domain": "pro"}}, DOMAINS, "img/x")
    assert inst == {"name": "hand", "project": "pro", "type": "lxc", "image": "img/x",
                    "profiles": ["default"], "description": "",
                    "config": {"security.protection.delete": "false"}, "devices": {}, "ip": "",
                    "target": ""}


def test_hosts_of_undeclared_domains_are_not_reconciled() -> None:
    hosts = {"old": _host("old", "gone"), "lost": {}, "odd": {"instance_domain": ["pro"]},
             "dev": _host("dev", "pro")}
    assert list(_instances(hosts)) == ["dev"]


def test_every_declared_machine_is_a_project_slash_name() -> None:
    domains = {"pro": _domain("pro", 2, project="work", machines=["a", "b"]),
               "empty": _domain("empty", 3)}
    assert ds.instance_refs(domains) == ["work/a", "work/b"]


def test_nothing_the_rules_return_shares_the_inputs() -> None:
    hosts = {"dev": _host("dev", "pro", instance_config={"a": "1"},
                          instance_devices={"d": {"type": "disk"}})}
    before = copy.deepcopy(hosts)
    got = _instances(hosts)
    got["dev"]["config"]["b"] = "2"
    got["dev"]["devices"]["d"]["x"] = "y"
    assert hosts == before


# -- ownership, provisioning and snapshot targets ------------------------------------------

def test_owned_names_cover_the_scope_and_the_declared_hosts() -> None:
    domains = {**DOMAINS, "pro": _domain("pro", 2, profiles={"gpu": {}}, machines=["dev"])}
    hosts = {"adm": _host("adm", "admin"), "dev": _host("dev", "pro"), "old": _host("o", "x")}
    assert ds.owned_names({"pro": domains["pro"]}) == {
        "networks": ["net-pro"], "projects": ["pro"], "profiles": ["pro/gpu"]}
    assert ds.host_instance_refs(list(hosts), hosts, domains) == ["admin/adm", "pro/dev"]


def test_a_target_lives_in_its_connections_project_and_says_if_declared() -> None:
    hosts = {
        "adm": _host("adm", "admin", ansible_incus_project="admin"),
        "dev": _host("dev", "pro"),                        # no connection variable
        "moved": _host("moved", "pro", ansible_incus_project="pro"),
        "old": _host("old", "gone"),
        "lost": {},
    }
    assert ds.instance_targets(list(hosts), hosts, DOMAINS) == [
        {"host": "adm", "name": "adm", "project": "admin", "declared": True},
        {"host": "dev", "name": "dev", "project": "pro", "declared": True},
        {"host": "moved", "name": "moved", "project": "pro", "declared": False},
        {"host": "old", "name": "old", "project": "gone", "declared": False},
        {"host": "lost", "name": "lost", "project": "default", "declared": False}]


def test_snapshot_targets_are_sorted_once_each_with_name_and_project() -> None:
    hosts = {"b": _host("b", "pro"), "a": _host("a", "admin")}
    assert filters.snapshot_targets(["b", "a", "b"], hosts, DOMAINS) == [
        {"name": "a", "project": "admin"}, {"name": "b", "project": "pro"}]


# -- bad records: one clear line --------------------------------------------------------------

@pytest.mark.parametrize("key", ["network", "project", "gateway", "dhcp_range"])
def test_a_record_without_a_generated_key_is_one_line_naming_it(key: str) -> None:
    record = _domain("pro", 2)
    del record[key]
    with pytest.raises(ds.DesiredStateError) as err:  # bridges need all but the project
        ds.networks({"pro": record}, True, "none", {})
        ds.projects({"pro": record}, {}, "default")
    message = str(err.value)
    assert f"anklume_domains.pro has no {key}" in message and "make sync" in message
    assert "\n" not in message


def test_the_filter_turns_a_bad_record_into_an_ansible_error() -> None:
    from ansible.errors import AnsibleFilterError

    record = _domain("pro", 2)
    del record["network"]
    desired_networks = filters.FilterModule().filters()["desired_networks"]
    with pytest.raises(AnsibleFilterError, match=r"anklume_domains\.pro has no network"):
        desired_networks({"pro": record}, True, "none", {})


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("Yes", True), ("on", True), ("1", True), (1, True),
    ("no", False), ("OFF", False), (0, False), (None, False), ("maybe", False), ([], False)])
def test_as_bool_reads_like_ansibles_bool_filter(value: Any, expected: bool) -> None:
    assert ds.as_bool(value) is expected


# -- the generator's own output, end to end ---------------------------------------------------

def _generated(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    assert sync(tmp, VALID).code == 0
    all_vars = yaml.safe_load((tmp / "group_vars" / "all.yml").read_text())
    hostvars = {}
    for path in sorted((tmp / "host_vars").glob("*.yml")):
        host = yaml.safe_load(path.read_text())
        group = yaml.safe_load((tmp / "group_vars" / f"{host['instance_domain']}.yml").read_text())
        hostvars[path.stem] = {**group, **host}
    return all_vars, hostvars


def test_the_generated_tree_gives_the_objects_incus_should_hold(tmp_path: Path) -> None:
    all_vars, hostvars = _generated(tmp_path)
    domains = all_vars["anklume_domains"]
    got = {i["name"]: i for i in ds.instances(sorted(hostvars), hostvars, domains,
                                               all_vars["anklume_default_os_image"],
                                               all_vars["anklume_admin_domain"], ADMIN_DEVICE)}
    assert got["admin-ansible"]["devices"]["eth0"]["network"] == "net-admin"
    assert "incus-socket" in got["admin-ansible"]["devices"]
    assert got["admin-ansible"]["config"]["security.protection.delete"] == "true"
    assert got["pro-dev"]["config"]["security.protection.delete"] == "false"
    assert [n["name"] for n in ds.networks(domains, True, "none", {})] == ["net-admin", "net-pro"]
    targets = ds.instance_targets(sorted(hostvars), hostvars, domains)
    assert all(t["declared"] for t in targets)
    assert {t["project"] for t in targets} == {"admin", "pro"}


def test_the_machine_vars_read_once_give_the_same_objects_as_hostvars(tmp_path: Path) -> None:
    """ADR-080: the rules that site.yml hands machine_vars instead of hostvars read only
    instance_* variables, so they give the same objects from either."""
    all_vars, hostvars = _generated(tmp_path)
    hostvars["pro-dev"]["instance_target"] = "member-2"  # a hand-written key is read too
    domains, hosts = all_vars["anklume_domains"], sorted(hostvars)
    once = ds.machine_vars(hosts, hostvars)
    assert all(k.startswith("instance_") for v in once.values() for k in v)
    assert "ansible_incus_project" not in once["pro-dev"]
    args = (domains, all_vars["anklume_default_os_image"], all_vars["anklume_admin_domain"],
            ADMIN_DEVICE)
    assert ds.instances(hosts, once, *args) == ds.instances(hosts, hostvars, *args)
    assert ds.placements(hosts, once, domains) == ds.placements(hosts, hostvars, domains)
    assert {"name": "pro-dev", "project": "pro", "target": "member-2"} in \
        ds.placements(hosts, once, domains)
    assert ds.host_instance_refs(hosts, once, domains) == \
        ds.host_instance_refs(hosts, hostvars, domains)
    with pytest.raises(ds.DesiredStateError, match="no-such-host: no variables"):
        ds.instances([*hosts, "no-such-host"], once, *args)


def test_site_yml_hands_the_machine_vars_to_the_three_rules_that_read_hosts() -> None:
    uses = {path.relative_to(REPO).as_posix(): path.read_text().count(
        "anklume_machine_vars | default(hostvars)")
        for path in [REPO / "roles/incus_cluster_check/tasks/main.yml",
                     REPO / "roles/incus_ownership/tasks/main.yml",
                     REPO / "roles/incus_instances/vars/main.yml"]}
    assert set(uses.values()) == {1}, uses
    assert "anklume.incus.machine_vars(hostvars)" in (REPO / "site.yml").read_text()


# -- acceptance: no template composes the state any more ------------------------------------

def test_no_template_composes_json_for_a_module() -> None:
    templates = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("**/*.json.j2")
                       if ".venv" not in p.parts and "collections" not in p.parts)
    assert templates == []
    lookups = re.compile(r"lookup\(\s*'(ansible\.builtin\.)?template'[^)]*\)\s*\|\s*from_json")
    plays = [REPO / "site.yml", REPO / "snapshot.yml", *REPO.glob("roles/*/tasks/*.yml"),
             *REPO.glob("roles/*/vars/*.yml"), *REPO.glob("roles/*/defaults/*.yml"),
             *REPO.glob("roles/*/molecule/*/*.yml")]
    offenders = [p.relative_to(REPO).as_posix() for p in plays if lookups.search(p.read_text())]
    assert offenders == []


def test_every_filter_the_playbooks_use_exists() -> None:
    used: set[str] = set()
    for path in [REPO / "site.yml", *REPO.glob("roles/*/*/*.yml")]:
        used |= set(re.findall(r"\|\s*anklume\.incus\.(\w+)", path.read_text()))
    assert {"desired_instances", "host_instance_refs", "provision_targets"} <= used
    known: set[str] = set()
    for path in (REPO / "plugins" / "filter").glob("*.py"):
        module = importlib.import_module(f"{FILTERS}.{path.stem}")
        known |= set(module.FilterModule().filters())
    assert used <= known
