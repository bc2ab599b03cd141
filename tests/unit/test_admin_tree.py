"""The admin machine as the controller (ADR-062), the parts that need no daemon: which files
scripts/admin_tree.py copies, where it finds the admin machine, and that admin_bootstrap
installs what the generator imports."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def load_script(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("admin_tree", REPO / "scripts/admin_tree.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root  # type: ignore[attr-defined]
    return module


def members(module: ModuleType) -> dict[str, tarfile.TarInfo]:
    data, count = module.archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = {m.name: m for m in tar.getmembers()}
    assert count == len(out)
    return out


def test_the_archive_keeps_the_project_and_leaves_host_caches_out(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "roles/r/tasks").mkdir(parents=True)
    (outside / "roles/r/tasks/main.yml").write_text("---\n")
    tree = tmp_path / "tree"
    for rel in ("infra.yml", ".git/HEAD", "inventory/a.yml", ".venv/bin/python",
                ".cache/admin_bootstrap/wheels-1/x.whl", ".cache/other/junk",
                "anklume/__pycache__/m.pyc", "nftables/anklume.nft", "nftables/.anklume.nft.loaded",
                "tests/output/x", "collections/ansible_collections/anklume/.keep"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(rel)
    (tree / "roles").symlink_to(outside / "roles")  # a lab tree's link: copied as its target
    (tree / "collections/ansible_collections/anklume/incus").symlink_to("../../..")
    got = members(load_script(tree))
    for kept in ("infra.yml", ".git/HEAD", "inventory/a.yml", "nftables/anklume.nft",
                 ".cache/admin_bootstrap/wheels-1/x.whl", "roles/r/tasks/main.yml"):
        assert got[kept].isfile(), kept
    for left in (".venv", ".cache/other", "anklume/__pycache__", "nftables/.anklume.nft.loaded",
                 "tests/output"):
        assert left not in got, left
    assert got["roles"].isdir() and got["roles/r"].isdir()
    link = got["collections/ansible_collections/anklume/incus"]
    assert link.issym() and link.linkname == "../../.."


def write_generated(root: Path, admin: str, machines: dict[str, list[str]]) -> None:
    (root / "group_vars").mkdir()
    (root / "host_vars").mkdir()
    doms = {admin: {"project": admin, "machines": list(machines)}} if admin else {}
    (root / "group_vars/all.yml").write_text(yaml.safe_dump(
        {"anklume_admin_domain": admin, "anklume_domains": doms}))
    for name, roles in machines.items():
        (root / f"host_vars/{name}.yml").write_text(yaml.safe_dump({"instance_roles": roles}))


def test_the_admin_machine_is_the_one_with_admin_bootstrap(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write_generated(tmp_path, "ops", {"ops-mon": ["base_system"],
                                      "ops-ctl": ["base_system", "admin_bootstrap"]})
    module = load_script(tmp_path)
    monkeypatch.delenv("ADMIN", raising=False)
    monkeypatch.delenv("ADMIN_TREE", raising=False)
    assert module.locate() == ("ops", "ops-ctl", "/root/anklume")
    monkeypatch.setenv("ADMIN", "ops-mon")
    monkeypatch.setenv("ADMIN_TREE", "/srv/tree")
    assert module.locate() == ("ops", "ops-mon", "/srv/tree")


@pytest.mark.parametrize(("admin", "machines", "says"), [
    ("", {}, "declares no admin domain"),
    ("ops", {"ops-mon": ["base_system"]}, "no machine with the role admin_bootstrap"),
])
def test_no_admin_machine_is_one_line_and_exit_2(tmp_path: Path, admin: str,
                                                 machines: dict[str, list[str]], says: str) -> None:
    write_generated(tmp_path, admin, machines)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/admin_tree.py").write_bytes((REPO / "scripts/admin_tree.py").read_bytes())
    proc = subprocess.run([sys.executable, str(tmp_path / "scripts/admin_tree.py")],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_admin_bootstrap_installs_the_generators_requirements() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = sorted(d.replace(" ", "") for d in project["dependencies"]
                    if not d.startswith("ansible"))
    defaults = yaml.safe_load((REPO / "roles/admin_bootstrap/defaults/main.yml").read_text())
    assert sorted(defaults["admin_bootstrap_python_requirements"]) == wanted
    assert "make" in defaults["admin_bootstrap_offline_debs"]
