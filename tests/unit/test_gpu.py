"""GPU instances (ADR-064): the device and driver user space a GPU machine gets, the check
that reads the host's GPUs before any change, and the profiles AnKLuMe ships.

The module's decisions are pure functions tested here on Incus-shaped data; the real
daemon's answer on this GPU-less host (the run stops before any change) is tested in
tests/integration/test_llm_stack.py, and a real GPU in scripts/gpu-check.sh.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

GPU = importlib.import_module("ansible_collections.anklume.incus.plugins.modules.incus_gpu")

H200 = {"vendor": "NVIDIA Corporation", "vendor_id": "10de", "product": "GH100",
        "driver": "nvidia", "driver_version": "570.86.15", "pci_address": "0000:19:00.0",
        "nvidia": {"model": "NVIDIA H200"}}
VIRTIO = {"vendor": "Red Hat, Inc.", "vendor_id": "1af4", "product": "Virtio GPU",
          "driver": "virtio-pci", "pci_address": "0000:00:02.0"}


def _domain(**extra: Any) -> dict[str, Any]:
    return {"project": "ai", "network": "net-ai", "subnet": "10.100.3.0/24",
            "gateway": "10.100.3.254", "dhcp_range": "10.100.3.100-10.100.3.199",
            "profiles": {}, "machines": ["llm"], **extra}


def _host(**extra: Any) -> dict[str, Any]:
    return {"instance_name": "llm", "instance_domain": "ai", "instance_type": "lxc",
            "instance_profiles": ["default"], "instance_devices": {}, "instance_config": {},
            "instance_gpu": True, **extra}


def _one(host: dict[str, Any], domain: dict[str, Any], gpu: dict[str, str]) -> dict[str, Any]:
    return ds.instances(["llm"], {"llm": host}, {"ai": domain}, "img", gpu=gpu)[0]


def test_gpu_true_alone_gets_the_device_and_the_mounted_user_space() -> None:
    inst = _one(_host(), _domain(), {"userspace": "mount", "driver_dir": "/opt/nv"})
    assert inst["devices"]["gpu"] == {"type": "gpu", "gputype": "physical"}
    assert inst["devices"]["nvidia-userspace"] == {
        "type": "disk", "source": "/opt/nv", "path": "/usr/local/nvidia", "readonly": "true"}
    assert inst["config"]["environment.LD_LIBRARY_PATH"] == "/usr/local/nvidia/lib64"
    assert inst["config"]["environment.PATH"].startswith("/usr/local/nvidia/bin:")


def test_the_runtime_method_sets_nvidia_runtime_and_no_mount() -> None:
    inst = _one(_host(), _domain(), {"userspace": "runtime", "driver_dir": "/opt/nv"})
    assert inst["config"]["nvidia.runtime"] == "true"
    assert inst["config"]["nvidia.driver.capabilities"] == "compute,utility"
    assert "nvidia-userspace" not in inst["devices"]


def test_a_gpu_device_from_a_profile_is_not_added_again() -> None:
    domain = _domain(profiles={"nvidia-compute": {"devices": {"gpu": {"type": "gpu"}}}})
    inst = _one(_host(instance_profiles=["default", "nvidia-compute"]), domain,
                {"userspace": "none"})
    assert "gpu" not in inst["devices"]


def test_the_machine_own_settings_win_over_the_additions() -> None:
    host = _host(instance_config={"environment.PATH": "/mine"},
                 instance_devices={"nvidia-userspace": {"type": "disk", "source": "/x",
                                                        "path": "/usr/local/nvidia"}})
    inst = _one(host, _domain(), {"userspace": "mount", "driver_dir": "/opt/nv"})
    assert inst["config"]["environment.PATH"] == "/mine"
    assert inst["devices"]["nvidia-userspace"]["source"] == "/x"


def test_a_vm_gets_the_device_only_and_a_machine_without_gpu_nothing() -> None:
    vm = _one(_host(instance_type="vm"), _domain(), {"userspace": "mount", "driver_dir": "/d"})
    assert vm["devices"]["gpu"]["type"] == "gpu" and "nvidia-userspace" not in vm["devices"]
    plain = _one(_host(instance_gpu=False), _domain(), {"userspace": "mount", "driver_dir": "/d"})
    assert not any(k.startswith(("gpu", "nvidia")) for k in plain["devices"])
    assert not any(k.startswith(("nvidia", "environment")) for k in plain["config"])


def test_gpu_machines_lists_only_those_that_ask() -> None:
    hostvars = {"llm": _host(), "web": _host(instance_name="web", instance_gpu=False)}
    domain = _domain(machines=["llm", "web"])
    assert ds.gpu_machines(["llm", "web"], hostvars, {"ai": domain}) == [
        {"name": "llm", "project": "ai", "type": "lxc"}]


def test_only_nvidia_cards_with_a_driver_count() -> None:
    assert GPU.nvidia_cards({"gpu": {"cards": [VIRTIO]}}) == []
    assert GPU.nvidia_cards({"gpu": {"cards": [VIRTIO, H200]}}) == [
        {"model": "NVIDIA H200", "driver": "nvidia", "driver_version": "570.86.15",
         "pci": "0000:19:00.0"}]


def test_the_no_gpu_line_names_the_machines_and_what_incus_lists() -> None:
    line = GPU.no_gpu_line([{"name": "llm", "project": "ai"}], {"gpu": {"cards": [VIRTIO]}})
    assert "\n" not in line
    assert "GPU requested by llm (project ai)" in line
    assert "Red Hat, Inc. Virtio GPU (driver virtio-pci)" in line
    assert "set gpu: false" in line
    assert "it lists no GPU at all" in GPU.no_gpu_line([{"name": "x", "project": "p"}], {})


@pytest.mark.parametrize(("wanted", "local", "toolkit", "libdir", "expected"), [
    ("auto", True, True, True, ("runtime", "")),
    ("auto", True, False, True, ("mount", "")),
    ("runtime", False, False, False, ("runtime", "")),
    ("mount", False, False, False, ("mount", "")),
    ("none", True, False, False, ("none", "")),
])
def test_the_user_space_method_follows_what_the_host_has(
        wanted: str, local: bool, toolkit: bool, libdir: bool, expected: tuple[str, str]) -> None:
    got = GPU.pick_userspace(wanted, "/usr/local/nvidia", local,
                             which=lambda _: "/usr/bin/x" if toolkit else None,
                             isdir=lambda _: libdir)
    assert got == expected


@pytest.mark.parametrize(("wanted", "local", "words"), [
    ("auto", True, "neither nvidia-container-cli"),
    ("auto", False, "Incus runs on another machine"),
    ("mount", True, "/usr/local/nvidia/lib64 does not exist"),
])
def test_no_user_space_is_one_line_with_the_fix(wanted: str, local: bool, words: str) -> None:
    method, problem = GPU.pick_userspace(wanted, "/usr/local/nvidia", local,
                                         which=lambda _: None, isdir=lambda _: False)
    assert method == "" and words in problem and "\n" not in problem


def test_undeclared_running_gpu_holders_are_found() -> None:
    instances = {
        ("default", "outsider"): {"status": "Running",
                                  "expanded_devices": {"g": {"type": "gpu"}}},
        ("default", "stopped"): {"status": "Stopped", "expanded_devices": {"g": {"type": "gpu"}}},
        ("ai", "llm"): {"status": "Running", "expanded_devices": {"g": {"type": "gpu"}}},
        ("default", "plain"): {"status": "Running", "expanded_devices": {"r": {"type": "disk"}}},
    }
    assert GPU.gpu_holders(instances, {"ai/llm"}) == ["default/outsider"]


def _infra(machine: str) -> str:
    return f"""\
project_name: t
global:
  base_subnet: "10.100"
domains:
  ai:
    subnet_id: 3
    machines:
      llm:
{machine}"""


def test_a_shipped_profile_is_rendered_into_the_domain(tmp_path: Path) -> None:
    result = sync(tmp_path, _infra("        profiles: [default, nvidia-compute]\n"))
    assert result.code == 0, result.err
    allvars = yaml.safe_load((tmp_path / "group_vars/all.yml").read_text())
    profile = allvars["anklume_domains"]["ai"]["profiles"]["nvidia-compute"]
    assert profile["devices"]["gpu"] == {"type": "gpu", "gputype": "physical"}
    host = yaml.safe_load((tmp_path / "host_vars/llm.yml").read_text())
    assert host["instance_gpu"] is True


def test_a_shipped_profile_on_the_wrong_machine_type_is_refused(tmp_path: Path) -> None:
    result = sync(tmp_path, _infra("        type: lxc\n        profiles: [gpu-passthrough]\n"))
    assert result.code == 2
    assert "profile 'gpu-passthrough' is for type: vm machines, and llm is type: lxc" in result.err
    assert not (tmp_path / "group_vars").exists()


def test_a_domain_defining_the_name_keeps_its_own_profile(tmp_path: Path) -> None:
    text = _infra("        profiles: [nvidia-compute]\n").replace(
        "    machines:", "    profiles:\n      nvidia-compute:\n        description: mine\n"
        "    machines:")
    result = sync(tmp_path, text)
    assert result.code == 0, result.err
    allvars = yaml.safe_load((tmp_path / "group_vars/all.yml").read_text())
    assert allvars["anklume_domains"]["ai"]["profiles"]["nvidia-compute"]["description"] == "mine"
