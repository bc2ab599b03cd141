"""global.firewall_mode: vm (roadmap Phase 11, ADR-066): the generator adds or completes
sys-firewall in the admin domain, reserves .253 in every domain, and the bridges hand out
the route through it. Traffic itself: tests/integration/test_firewall_vm.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.fake_incus import REPO  # noqa: F401  (puts the collection on sys.path)
from tests.unit.gen_support import VALID, sync

pytestmark = pytest.mark.unit
VM = VALID.replace('  base_subnet: "10.100"\n', '  base_subnet: "10.100"\n  firewall_mode: vm\n')


def _vars(tmp: Path, path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((tmp / path).read_text())
    return data


def test_host_mode_adds_nothing(tmp_path: Path) -> None:
    assert sync(tmp_path, VALID).code == 0
    allvars = _vars(tmp_path, "group_vars/all.yml")
    assert allvars["anklume_firewall"] is None
    assert "firewall" not in allvars["anklume_domains"]["pro"]
    assert not (tmp_path / "host_vars" / "sys-firewall.yml").exists()


def test_vm_mode_adds_the_firewall_to_the_admin_domain(tmp_path: Path) -> None:
    res = sync(tmp_path, VM)
    assert res.code == 0, res.err
    allvars = _vars(tmp_path, "group_vars/all.yml")
    assert "sys-firewall" in allvars["anklume_domains"]["admin"]["machines"]
    fw = _vars(tmp_path, "host_vars/sys-firewall.yml")
    assert fw["instance_type"] == "vm" and fw["instance_domain"] == "admin"
    assert fw["instance_ip"] == "10.100.0.253" and fw["instance_allow_spoofing"] is True
    assert fw["instance_roles"] == ["sys_firewall"]
    assert fw["instance_config"]["boot.autorestart"] == "true"
    nic = fw["instance_devices"]["fw-pro"]
    assert nic == {"type": "nic", "network": "net-pro", "name": "net-pro",
                   "ipv4.address": "10.100.2.253", "security.mac_filtering": "false",
                   "security.ipv4_filtering": "false", "security.ipv6_filtering": "false"}
    assert allvars["anklume_firewall"]["interfaces"] == {"admin": "eth0", "pro": "net-pro"}
    assert allvars["anklume_domains"]["pro"]["firewall"] == {
        "address": "10.100.2.253", "routes": "10.100.0.0/16"}


def test_a_declared_lxc_firewall_is_kept_with_a_warning(tmp_path: Path) -> None:
    text = VM.replace("        roles: [base_system]\n",
                      "        roles: [base_system]\n      sys-firewall:\n        type: lxc\n")
    res = sync(tmp_path, text)
    assert res.code == 0, res.err
    [line] = [ln for ln in res.err.splitlines() if "sys-firewall" in ln]
    assert "type lxc" in line and "kernel is the host's" in line
    fw = _vars(tmp_path, "host_vars/sys-firewall.yml")
    assert fw["instance_type"] == "lxc" and fw["instance_ip"] == "10.100.0.253"


def test_a_declared_firewall_without_type_is_a_vm(tmp_path: Path) -> None:
    text = VM.replace("        roles: [base_system]\n",
                      "        roles: [base_system]\n      sys-firewall: {}\n")
    assert sync(tmp_path, text).code == 0
    assert _vars(tmp_path, "host_vars/sys-firewall.yml")["instance_type"] == "vm"


@pytest.mark.parametrize(("change", "where", "what"), [
    (('ip: "10.100.2.10"', 'ip: "10.100.2.253"'), "domains.pro.machines.pro-dev.ip",
     "reserved for sys-firewall"),
    (('  firewall_mode: vm\n', '  firewall_mode: vm\n  dhcp_range: "100-253"\n'),
     "global.dhcp_range", "reaches .253"),
    (('  firewall_mode: vm\n', '  firewall_mode: vm\n  admin_domain: ""\n'),
     "global.firewall_mode", "needs an admin domain"),
    (('      pro-dev:\n', '      sys-firewall: {}\n      pro-dev:\n'),
     "domains.pro.machines.sys-firewall", "declared in domain pro"),
    (('        roles: [base_system]\n',
      '        roles: [base_system]\n      sys-firewall: {ip: "10.100.0.20"}\n'),
     "domains.admin.machines.sys-firewall.ip", "fixed address"),
])
def test_bad_firewall_input_is_one_line_and_writes_nothing(
        tmp_path: Path, change: tuple[str, str], where: str, what: str) -> None:
    assert change[0] in VM
    res = sync(tmp_path, VM.replace(*change))
    assert res.code == 2
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    assert where in lines[0] and what in lines[0] and "Traceback" not in res.err
    assert not (tmp_path / "group_vars").exists()


def test_the_bridges_route_the_other_domains_through_the_firewall() -> None:
    from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds
    domains = {"pro": {"network": "net-pro", "subnet": "10.100.2.0/24",
                       "gateway": "10.100.2.254", "dhcp_range": "10.100.2.100-10.100.2.199",
                       "firewall": {"address": "10.100.2.253", "routes": "10.100.0.0/16"}}}
    [net] = ds.networks(domains, True, "none", {})
    assert net["config"]["raw.dnsmasq"] == (
        "dhcp-option=option:classless-static-route,10.100.0.0/16,10.100.2.253,"
        "0.0.0.0/0,10.100.2.254")
    del domains["pro"]["firewall"]
    [net] = ds.networks(domains, True, "none", {})
    assert "raw.dnsmasq" not in net["config"]


def test_recorded_drops_do_not_make_the_ruleset_differ() -> None:
    """The firewall's `drops` set fills with traffic; the next apply must not reload for it."""
    from ansible_collections.anklume.incus.plugins.modules import anklume_nftables as mod
    empty = ("table inet anklume {\n\tset drops {\n\t\ttypeof iifname . oifname\n"
             "\t\tflags dynamic\n\t\tcounter\n\t}\n\tset fixed {\n\t\ttype ipv4_addr\n"
             "\t\telements = { 10.0.0.1 }\n\t}\n}")
    filled = empty.replace(
        "\t\tcounter\n\t}",
        '\t\tcounter\n\t\telements = { "net-a" . "net-b" counter packets 1 bytes 84,\n'
        '\t\t\t     "net-b" . "net-a" counter packets 3 bytes 252 }\n\t}', 1)
    assert filled != empty
    assert mod.without_dynamic_elements(filled) == mod.without_dynamic_elements(empty) == empty


def test_the_firewall_route_leaves_a_bridge_when_host_mode_comes_back() -> None:
    """Switching back to firewall_mode host: raw.dnsmasq is no longer declared, so it goes."""
    from tests.unit.fake_incus import FakeIncus, managed, run
    config = {"ipv4.address": "10.100.2.254/24",
              "raw.dnsmasq": "dhcp-option=option:classless-static-route,x"}
    bridge = {"name": "net-pro", "managed": True, "type": "bridge", "description": "d",
              "config": managed({**config, "bridge.mtu": "1500"}), "used_by": []}
    client = FakeIncus(networks=[bridge])
    result = run("incus_network", {"networks": [{"name": "net-pro", "description": "d",
                                                 "config": {"ipv4.address": "10.100.2.254/24"}}],
                                   "owner": "anklume"}, client)
    assert [(e["action"], e.get("keys")) for e in result["plan"]] == [("change", ["raw.dnsmasq"])]
    [(_method, _path, _project, data)] = client.writes
    assert "raw.dnsmasq" not in data["config"] and data["config"]["bridge.mtu"] == "1500"
