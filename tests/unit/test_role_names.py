"""Sync refuses a machine role Ansible would not find (anklume/roles.py).

A plain name is a folder of this project's roles/, of the tree's roles/ or of a roles_path
in the tree's ansible.cfg; `namespace.collection.role` is a role of a collection in a
collections path. Anything else: one line with its place and a guess, exit 2, nothing
written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.incus_helpers import REPO, SHIPPED_INFRA
from tests.unit.gen_support import run, sync, tree, write_infra

pytestmark = pytest.mark.unit


def _machine(roles: str) -> str:
    return f"""\
project_name: t
domains:
  pro:
    subnet_id: 2
    machines:
      pro-dev:
        ip: "10.100.2.10"
        roles: {roles}
"""


def _role(folder: Path) -> None:
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "main.yml").write_text("---\n[]\n")


def test_a_mistyped_role_is_one_line_with_a_guess_exit_2_and_nothing_written(
        tmp_path: Path) -> None:
    result = sync(tmp_path, _machine("[base-system]"))
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"{tmp_path / 'infra.yml'}:8: "
                                 "domains.pro.machines.pro-dev.roles[0]: unknown role "
                                 "'base-system'; did you mean 'base_system'?")
    assert tree(tmp_path) == {}


def test_every_unknown_role_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    result = sync(tmp_path, _machine("[base_system, ollama_servr, zzqqxx]"))
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 2
    assert "roles[1]: unknown role 'ollama_servr'; did you mean 'ollama_server'?" in lines[0]
    assert "roles[2]: unknown role 'zzqqxx'; name a folder of roles/" in lines[1]


def test_every_shipped_role_passes(tmp_path: Path) -> None:
    shipped = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert run(str(write_infra(tmp_path, _machine(f"[{', '.join(shipped)}]")))).code == 0


def test_a_role_of_the_trees_own_roles_folder_passes(tmp_path: Path) -> None:
    _role(tmp_path / "roles" / "my_role")
    assert sync(tmp_path, _machine("[my_role]")).code == 0


def test_a_user_role_in_a_roles_path_of_the_trees_ansible_cfg_passes(tmp_path: Path) -> None:
    _role(tmp_path / "site-roles" / "hardening")
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nroles_path = site-roles:roles  ; our own first\n")
    result = sync(tmp_path, _machine("[base_system, hardening]"))
    assert result.code == 0, result.err
    result = sync(tmp_path, _machine("[hardenin]"))
    assert result.code == 2 and "did you mean 'hardening'?" in result.err


def test_a_role_in_ansible_roles_path_passes(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _role(tmp_path / "elsewhere" / "from_env")
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", str(tmp_path / "elsewhere"))
    assert sync(tmp_path, _machine("[from_env]")).code == 0


def test_a_collection_role_resolves_in_the_collections_path(tmp_path: Path) -> None:
    _role(tmp_path / "colls" / "ansible_collections" / "acme" / "tools" / "roles" / "agent")
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = colls\n")
    assert sync(tmp_path, _machine("[acme.tools.agent, anklume.incus.base_system]")).code == 0
    result = sync(tmp_path, _machine("[acme.tools.agnet]"))
    assert result.code == 2
    assert "unknown role 'acme.tools.agnet'; did you mean 'acme.tools.agent'?" in result.err
    assert sync(tmp_path, _machine("[acme.other.agent]")).code == 2


def test_a_template_machines_unknown_role_is_reported_once(tmp_path: Path) -> None:
    result = sync(tmp_path, """\
domains: {}
domain_templates:
  student:
    count: 3
    first_subnet_id: 11
    machines:
      srv: {ip_host: 10, roles: [base_sytem]}
""")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert ":7: domain_templates.student.machines.srv.roles[0]: unknown role" in result.err


def test_the_shipped_infra_names_only_roles_that_exist(tmp_path: Path) -> None:
    result = run(str(SHIPPED_INFRA), "--dry-run", "--output", str(tmp_path))
    assert result.code == 0, result.err
