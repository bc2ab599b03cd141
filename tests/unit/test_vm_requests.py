"""VM instances (roadmap Phase 9): the request the instances module builds for a `type: vm`,
the wait for its agent, and the capability check that stops plan and apply (ADR-065).

The real daemon's side is tests/integration/test_vm_refusal.py (this host cannot run VMs);
these tests pin the request bodies and messages, which no VM-less host can show otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.fake_incus import FakeIncus, managed, module, run

pytestmark = pytest.mark.unit
inst = module("incus_instance")
vms = module("incus_vm_support")
IncusError = module("incus_vm_support").incus.IncusError

VM_CONFIG = {"limits.cpu": "2", "limits.memory": "2GiB", "security.secureboot": "true"}
VM = {"name": "s-vm", "project": "s", "type": "vm", "image": "images:debian/12",
      "config": {"limits.memory": "4GiB", "security.protection.delete": "true"}}


def test_a_vm_is_created_as_a_virtual_machine_with_its_resources_and_secure_boot() -> None:
    client = FakeIncus()
    result = run("incus_instance", {"instances": [VM], "owner": "anklume", "wait": False,
                                    "vm_config": VM_CONFIG}, client)
    assert [(e["name"], e["action"]) for e in result["plan"]] == [("s-vm", "create")]
    [(method, path, project, body)] = client.writes
    assert (method, path, project) == ("POST", "/1.0/instances", "s")
    assert body["type"] == "virtual-machine" and body["start"] is True
    assert body["source"] == {"type": "image", "alias": "debian/12",
                              "server": "https://images.linuxcontainers.org",
                              "protocol": "simplestreams"}
    # The machine's own key wins over the role's VM defaults; the others are filled in.
    assert body["config"]["limits.memory"] == "4GiB"
    assert body["config"]["limits.cpu"] == "2"
    assert body["config"]["security.secureboot"] == "true"
    assert body["config"]["user.anklume.managed"] == "true"


def test_a_container_gets_none_of_the_vm_defaults() -> None:
    client = FakeIncus()
    spec = {"name": "s-ct", "project": "s", "image": "anklume/debian-12"}
    run("incus_instance", {"instances": [spec], "wait": False, "vm_config": VM_CONFIG}, client)
    body = client.writes[0][3]
    assert body["type"] == "container"
    assert not set(VM_CONFIG) & set(body["config"])


def test_secure_boot_declared_off_is_kept() -> None:
    spec = {**VM, "config": {"security.secureboot": False}}
    config = inst.wanted_config(spec, "anklume", VM_CONFIG)
    assert config["security.secureboot"] == "false"


def test_an_existing_vm_with_its_defaults_has_no_drift() -> None:
    config = managed({**VM_CONFIG, "limits.memory": "4GiB",
                      "security.protection.delete": "true"})
    cur = {"name": "s-vm", "project": "s", "status": "Running", "type": "virtual-machine",
           "profiles": ["default"], "description": "", "devices": {}, "config": config}
    result = run("incus_instance", {"instances": [VM], "owner": "anklume", "wait": False,
                                    "vm_config": VM_CONFIG}, FakeIncus(instances=[cur]))
    assert result["plan"] == [] and not result["changed"]


def _vm_state(processes: int) -> dict[str, Any]:
    return {"type": "virtual-machine", "status": "Running",
            "state": {"processes": processes, "network": {"enp5s0": {"addresses": [
                {"family": "inet", "scope": "global", "address": "10.1.2.3"}]}}}}


def test_a_vm_is_ready_only_once_its_agent_answers() -> None:
    assert not inst.ready(_vm_state(-1), "10.1.2.3")
    assert not inst.ready(_vm_state(0), "")
    assert inst.ready(_vm_state(12), "10.1.2.3")
    assert "agent not answering" in inst.not_ready({"name": "s-vm"}, _vm_state(-1))


def test_a_container_needs_no_agent() -> None:
    ct = {**_vm_state(-1), "type": "container"}
    assert inst.ready(ct, "10.1.2.3")


def test_the_vm_wait_is_the_long_configurable_one() -> None:
    params = {"instances": [VM], "wait": False, "timeout": 120, "vm_timeout": 900}
    fake = inst.Instances(_Module(params), "incus_instance", client=FakeIncus())
    assert fake.wait_seconds([VM]) == 900
    assert fake.wait_seconds([{"name": "c", "project": "s"}]) == 120


class _Module:
    check_mode = False

    def __init__(self, params: dict[str, Any]) -> None:
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        self.params = ArgumentSpecValidator(inst.ARGUMENT_SPEC).validate(
            params).validated_parameters


# -- the capability check (incus_vm_support) ---------------------------------------------

class _Server:
    """GET /1.0 and the refusal of a VM creation, as this host's Incus 6.0.4 answers them."""

    REFUSAL = ('creating a VM: Failed creating instance record: Instance type '
               '"virtual-machine" is not supported on this server: vhost_vsock kernel '
               'module not loaded')

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.calls = 0
        self.posts: list[dict] = []

    def get(self, path: str, what: str | None = None, **_: Any) -> dict:
        self.calls += 1
        assert path == "/1.0"
        return {"environment": {"driver": self.driver}}

    def start_operation(self, path: str, method: str, data: dict, **_: Any) -> str:
        self.calls += 1
        self.posts.append(data)
        return "op"

    def wait_operation(self, op: str, what: str | None = None) -> None:
        raise IncusError(self.REFUSAL)


def test_drivers_are_read_from_the_environment() -> None:
    assert vms.drivers_of({"environment": {"driver": "lxc | qemu"}}) == ["lxc", "qemu"]
    assert vms.drivers_of({"environment": {"driver": "lxc"}}) == ["lxc"]
    assert vms.drivers_of({}) == []


def test_no_vm_declared_costs_one_read_and_no_probe() -> None:
    server = _Server("lxc")
    result = vms.check(server, [{"name": "c", "project": "p", "type": "lxc"}], "local")
    assert result["problems"] == [] and server.calls == 1 and not server.posts


def test_a_host_with_qemu_is_not_probed() -> None:
    server = _Server("lxc | qemu")
    result = vms.check(server, [{"name": "v", "project": "p", "type": "vm"}], "local")
    assert result["vm_supported"] and result["problems"] == [] and not server.posts


def test_each_vm_gets_one_line_with_the_drivers_and_incus_reason() -> None:
    server = _Server("lxc")
    result = vms.check(server, [{"name": "v1", "project": "p", "type": "vm"},
                                {"name": "c", "project": "p", "type": "lxc"},
                                {"name": "v2", "project": "q", "type": "vm"}], "local")
    assert len(server.posts) == 1  # one probe for every VM
    assert server.posts[0]["source"] == {"type": "none"}
    assert [e["name"] for e in result["plan"]] == ["v1", "v2"]
    line = result["problems"][0]
    assert "\n" not in line
    assert line.startswith("machine v1 (project p) is type vm")
    assert "drivers are [lxc]" in line
    assert line.count("vhost_vsock kernel module not loaded") == 1
    assert "Failed creating instance record" not in line
    assert "fix:" in line and "type: lxc" in line


def test_the_module_fails_in_apply_and_reports_in_a_plan() -> None:
    params = {"instances": [{"name": "v1", "project": "p", "type": "vm"}]}
    failed = run("incus_vm_support", params, _Server("lxc"))  # type: ignore[arg-type]
    assert failed["failed"] and failed["msg"].startswith("machine v1 (project p)")
    planned = run("incus_vm_support", {**params, "fail": False}, _Server("lxc"))  # type: ignore[arg-type]
    assert not planned.get("failed") and planned["plan"][0]["action"] == "unsupported"


def test_the_plan_says_which_image_a_new_instance_is_made_from() -> None:
    """make plan prints `+ instance s-vm (image images:debian/12)` (issue 29)."""
    result = run("incus_instance", {"instances": [VM], "owner": "anklume", "wait": False,
                                    "vm_config": VM_CONFIG}, FakeIncus(), check_mode=True)
    assert [(e["name"], e["action"], e["image"]) for e in result["plan"]] == [
        ("s-vm", "create", "images:debian/12")]
