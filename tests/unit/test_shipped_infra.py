"""The shipped infra.yml and a v1-style file (every v1 key) validate and render.

The shipped file is read as committed, from tests/fixtures/shipped_infra.yml: the
checkout's own infra.yml is the user's to edit (examples/README copies an example over it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from anklume import render, validate, yamlload
from tests.incus_helpers import SHIPPED_INFRA
from tests.unit.gen_support import sync, tree

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_fixture_is_the_committed_infra_yml() -> None:
    """The copy the tests read is the infra.yml of HEAD, never the working tree's."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: no committed infra.yml to compare with")
    proc = subprocess.run(["git", "show", "HEAD:./infra.yml"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"no committed infra.yml to compare with: {proc.stderr.strip()}")
    assert SHIPPED_INFRA.read_text() == proc.stdout, (
        "tests/fixtures/shipped_infra.yml differs from the committed infra.yml; after changing "
        "the shipped file: git show HEAD:infra.yml > tests/fixtures/shipped_infra.yml")


def test_shipped_infra_has_the_four_roadmap_domains() -> None:
    text = SHIPPED_INFRA.read_text()
    infra, warnings = validate.validate(yamlload.load_text(text, "infra.yml"))
    assert warnings == []
    assert {d.name: d.subnet_id for d in infra.domains} == {
        "admin": 0, "perso": 1, "pro": 2, "homelab": 3}
    machines = {m.name: m for d in infra.domains for m in d.machines}
    assert {n: m.ip for n, m in machines.items()} == {
        "admin-ansible": "10.100.0.10", "perso-desktop": "10.100.1.10",
        "pro-dev": "10.100.2.10", "homelab-llm": "10.100.3.10"}
    assert infra.base_subnet == "10.100"
    assert all(m.os_image == "anklume/debian-12" for m in machines.values())
    assert all(not m.gpu and "base_system" in m.roles for m in machines.values())
    assert machines["admin-ansible"].roles == ["base_system", "admin_bootstrap"]
    assert machines["admin-ansible"].config == {"security.nesting": "true"}
    bodies = render.render(infra)
    host = yaml.safe_load(bodies["host_vars/homelab-llm.yml"])
    assert host["instance_gpu"] is False


V1_STYLE = """\
---
# v1 layout: every key AnKLuMe v1 files use
project_name: v1-style
global:
  base_subnet: "10.100"
  default_os_image: "images:debian/13"
  default_connection: community.general.incus
  default_user: root
  gpu_policy: shared
domains:
  admin:
    description: "Administration"
    subnet_id: 0
    ephemeral: false
    machines:
      v1-admin:
        description: "Ansible controller"
        type: lxc
        ip: "10.100.0.10"
        config:
          security.nesting: "true"
        roles:
          - base_system
  llm:
    description: "LLM"
    subnet_id: 10
    ephemeral: true
    profiles:
      nvidia-compute:
        devices:
          gpu:
            type: gpu
            gputype: physical
    machines:
      v1-llm:
        type: lxc
        ip: "10.100.10.10"
        gpu: true
        ephemeral: false
        profiles:
          - default
          - nvidia-compute
        roles: [base_system, ollama_server]
      v1-vm:
        type: vm
        ip: "10.100.10.20"
        config:
          limits.cpu: "2"
          limits.memory: "2GiB"
"""


def test_a_v1_style_file_validates_and_syncs(tmp_path: Path) -> None:
    result = sync(tmp_path, V1_STYLE)
    assert result.code == 0, result.err
    files = tree(tmp_path)
    assert "host_vars/v1-vm.yml" in files and "inventory/llm.yml" in files
    llm = yaml.safe_load(files["host_vars/v1-llm.yml"])
    assert llm["instance_profiles"] == ["default", "nvidia-compute"]
    assert llm["instance_ephemeral"] is False
    assert yaml.safe_load(files["host_vars/v1-vm.yml"])["instance_ephemeral"] is True
    all_vars = yaml.safe_load(files["group_vars/all.yml"])
    assert all_vars["anklume_domains"]["llm"]["profiles"]["nvidia-compute"]["devices"] == {
        "gpu": {"type": "gpu", "gputype": "physical"}}


def test_config_booleans_and_numbers_become_incus_strings(tmp_path: Path) -> None:
    text = V1_STYLE.replace('security.nesting: "true"', "security.nesting: true\n"
                            "          limits.cpu: 2")
    assert sync(tmp_path, text).code == 0
    host = yaml.safe_load(tree(tmp_path)["host_vars/v1-admin.yml"])
    assert host["instance_config"] == {"security.nesting": "true", "limits.cpu": "2"}


def test_additive_keys_render(tmp_path: Path) -> None:
    text = V1_STYLE.replace("  gpu_policy: shared", "  gpu_policy: shared\n"
                            "  incus_remote: lab\n  isolation: false\n  admin_domain: \"\"\n"
                            '  dhcp_range: "150-200"') + (
        "network_policies:\n"
        "  - {from: admin, to: v1-llm, protocol: tcp, ports: [11434, \"8000-8080\"]}\n")
    text = text.replace("    ephemeral: true\n", "    ephemeral: true\n"
                        "    snapshots_schedule: '0 3 * * *'\n    snapshots_expiry: 2w\n")
    result = sync(tmp_path, text)
    assert result.code == 0, result.err
    files = tree(tmp_path)
    all_vars = yaml.safe_load(files["group_vars/all.yml"])
    assert all_vars["anklume_incus_remote"] == "lab"
    assert all_vars["anklume_isolation"] is False
    assert all_vars["anklume_admin_domain"] == ""
    assert all_vars["anklume_domains"]["llm"]["dhcp_range"] == "10.100.10.150-10.100.10.200"
    assert all_vars["anklume_network_policies"] == [{
        "from": "admin", "from_kind": "domain", "from_cidr": "10.100.0.0/24",
        "to": "v1-llm", "to_kind": "machine", "to_cidr": "10.100.10.10/32",
        "protocol": "tcp", "ports": [11434, "8000-8080"], "description": ""}]
    host = yaml.safe_load(files["host_vars/v1-vm.yml"])
    assert host["instance_snapshots_schedule"] == "0 3 * * *"
    assert host["instance_snapshots_expiry"] == "2w"
    assert yaml.safe_load(files["group_vars/llm.yml"])["ansible_incus_remote"] == "lab"


def test_host_policies_and_the_spoofing_opt_out_render(tmp_path: Path) -> None:
    """`to: host` is a policy endpoint of its own kind; allow_spoofing reaches host_vars."""
    text = V1_STYLE.replace('        ip: "10.100.10.20"\n',
                            '        ip: "10.100.10.20"\n        allow_spoofing: true\n') + (
        "network_policies:\n"
        "  - {from: v1-llm, to: host, protocol: tcp, ports: [8080], description: cache}\n")
    result = sync(tmp_path, text)
    assert result.code == 0, result.err
    files = tree(tmp_path)
    all_vars = yaml.safe_load(files["group_vars/all.yml"])
    assert all_vars["anklume_network_policies"] == [{
        "from": "v1-llm", "from_kind": "machine", "from_cidr": "10.100.10.10/32",
        "to": "host", "to_kind": "host", "to_cidr": "",
        "protocol": "tcp", "ports": [8080], "description": "cache"}]
    spoofing = {name: yaml.safe_load(body)["instance_allow_spoofing"]
                for name, body in files.items() if name.startswith("host_vars/")}
    assert [name for name, on in spoofing.items() if on] == ["host_vars/v1-vm.yml"]


def test_machine_without_ip_uses_dhcp(tmp_path: Path) -> None:
    assert sync(tmp_path, V1_STYLE.replace('        ip: "10.100.10.20"\n', "")).code == 0
    assert yaml.safe_load(tree(tmp_path)["host_vars/v1-vm.yml"])["instance_ip"] == ""


def test_the_committed_tree_is_what_the_committed_infra_yml_renders(tmp_path: Path) -> None:
    """A user who clones and runs `make sync` gets no change: the generated files committed
    beside infra.yml are rendered by this generator (a new key in a record shows here)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: no committed tree to compare with")
    listed = subprocess.run(["git", "ls-files", "group_vars", "host_vars", "inventory"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for path in listed:
        body = subprocess.run(["git", "show", f"HEAD:./{path}"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    result = sync(tmp_path, SHIPPED_INFRA.read_text(), "--dry-run")
    assert result.code == 0, result.err
    assert "no changes" in result.out, result.out
