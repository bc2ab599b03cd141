"""A declared VM on an Incus that cannot run VMs stops plan and apply before any change
(roadmap Phase 9, ADR-065), on the real daemon.

This host's Incus lists only the lxc driver (no vhost_vsock): a lab declaring one container
and one VM in domain t12v (10.154.0.0/24) must get, from `make plan` and from `make apply`,
one line naming the VM, Incus's driver list and its own reason; the plan still shows the VM
it would create; nothing is created. On a host whose Incus lists qemu the test is skipped
(there the VM is created: docs/vm-support.md says how it was checked and what was not).

Own lab: it declares a type vm machine (t12v-vm) on an Incus without qemu and asserts that no
t12v object exists after the refused plan and apply, which only a lab of its own, never applied
before, can show; the last test applies it as containers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, query
from tests.integration.reconcile_lab import cleanup

pytestmark = pytest.mark.incus

PREFIX = "t12v"
VM, CT = f"{PREFIX}-vm", f"{PREFIX}-ct"


def infra() -> dict:
    return {"project_name": "t12vm",
            "global": {"base_subnet": "10.154", "admin_domain": ""},
            "domains": {PREFIX: {"subnet_id": 0, "ephemeral": True, "machines": {
                CT: {"type": "lxc", "ip": "10.154.0.10"},
                VM: {"type": "vm", "ip": "10.154.0.11",
                     "config": {"limits.cpu": "1", "limits.memory": "1GiB"}}}}}}


def ours() -> list[str]:
    """Every object of the lab that exists: none may, after a refused plan or apply."""
    nets = [n["name"] for n in query("/1.0/networks?recursion=1") or []  # type: ignore[union-attr]
            if n["name"].startswith(f"net-{PREFIX}")]
    projects = [p["name"] for p in query("/1.0/projects?recursion=1") or []  # type: ignore[union-attr]
                if p["name"].startswith(PREFIX)]
    insts = [i["name"] for i in query("/1.0/instances?all-projects=true&recursion=1") or []  # type: ignore[union-attr]
             if i["name"].startswith(PREFIX) or i["name"] == "anklume-vm-probe"]
    return nets + projects + insts


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = query("/1.0")
    if "qemu" in str(server["environment"]["driver"]):  # type: ignore[index]
        pytest.skip("this Incus runs VMs (qemu listed): the refusal cannot be shown here")
    cleanup(PREFIX, "anklumet12v")
    root = lab_tree(tmp_path_factory.mktemp("t12v"))
    (root / "infra.yml").write_text(yaml.safe_dump(infra(), sort_keys=False))
    yield root
    cleanup(PREFIX, "anklumet12v")


def refusal_lines(out: str, label: str) -> list[str]:
    return [ln for ln in out.splitlines()
            if ln.startswith(f"{label}: ") and f"machine {VM} (project {PREFIX}) is type vm" in ln]


def test_plan_shows_the_vm_then_stops_with_one_line(lab: Path) -> None:
    rc, out = lab_make(lab, "plan", ANSIBLE_SKIP_TAGS="nftables")
    assert rc != 0, out
    [line] = refusal_lines(out, "plan")
    assert "instance drivers are [lxc]" in line
    assert "not supported on this server" in line and "vhost_vsock" in line
    assert "fix:" in line
    # What the VM would be is still shown, with the container beside it.
    assert f"plan: + instance {VM}" in out and f"plan: + instance {CT}" in out
    assert "VMs this Incus cannot run" in out
    assert ours() == []


def test_apply_stops_before_any_change(lab: Path) -> None:
    rc, out = lab_make(lab, "apply", ANSIBLE_SKIP_TAGS="nftables")
    assert rc != 0, out
    [line] = refusal_lines(out, "apply")
    assert "vhost_vsock" in line
    assert ours() == []


def test_the_same_lab_as_containers_only_applies(lab: Path) -> None:
    """The control: with the VM declared type lxc, the check passes and the apply runs."""
    doc = infra()
    vm = doc["domains"][PREFIX]["machines"][VM]
    vm["type"] = "lxc"
    vm.pop("config")
    (lab / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, out = lab_make(lab, "apply", "TAGS=infra", ANSIBLE_SKIP_TAGS="nftables", timeout=600)
    assert rc == 0, out
    assert refusal_lines(out, "apply") == []
    assert sorted(n for n in ours() if n.startswith(f"{PREFIX}-")) == [CT, VM]
