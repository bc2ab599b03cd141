"""Generation: files, managed sections, idempotence, dry-run, orphans, atomicity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anklume import managed
from tests.incus_helpers import REPO
from tests.unit.gen_support import VALID, mtimes, run, sync, tree, write_infra

pytestmark = pytest.mark.unit

EXPECTED = {
    "inventory/admin.yml", "inventory/pro.yml",
    "group_vars/all.yml", "group_vars/admin.yml", "group_vars/pro.yml",
    "host_vars/admin-ansible.yml", "host_vars/pro-dev.yml",
}


def _load(root: Path, rel: str) -> dict[str, object]:
    data = yaml.safe_load((root / rel).read_text())
    assert isinstance(data, dict)
    return data


def test_sync_writes_inventory_group_vars_and_host_vars(tmp_path: Path) -> None:
    result = sync(tmp_path, VALID)
    assert result.code == 0, result.err
    assert set(tree(tmp_path)) == EXPECTED
    assert result.out.strip().endswith("sync: 7 files written, 0 unchanged")
    inv = _load(tmp_path, "inventory/pro.yml")
    # pro-dev declares no roles: the provision group is there, empty (and the group the
    # provision check fills for a run).
    assert inv == {"all": {"children": {"pro": {"hosts": {"pro-dev": {}}},
                                        "anklume_provision": {},
                                        "anklume_provision_due": {}}}}
    host = _load(tmp_path, "host_vars/admin-ansible.yml")
    assert host["instance_config"] == {"security.nesting": "true"}
    assert host["instance_profiles"] == ["default"]
    assert host["instance_ip"] == "10.100.0.10"
    assert host["instance_ephemeral"] is False
    assert _load(tmp_path, "host_vars/pro-dev.yml")["instance_ephemeral"] is True


def test_every_generated_file_has_one_managed_section(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    for rel, data in tree(tmp_path).items():
        text = data.decode()
        assert text.count(managed.START) == 1 and text.count(managed.END) == 1, rel


def test_second_sync_writes_nothing_and_says_so(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    before = mtimes(tmp_path)
    result = run(str(tmp_path / "infra.yml"))
    assert result.code == 0
    assert result.out.strip() == "sync: no changes (7 files up to date)"
    assert mtimes(tmp_path) == before


def test_adding_a_domain_creates_its_files(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    result = sync(tmp_path, VALID + "  lab:\n    subnet_id: 5\n    machines:\n"
                  "      lab-web: {ip: \"10.100.5.10\"}\n")
    assert result.code == 0
    assert {"inventory/lab.yml", "group_vars/lab.yml", "host_vars/lab-web.yml"} <= set(
        tree(tmp_path))
    assert "sync: 4 files written, 6 unchanged" in result.out


def test_dry_run_prints_a_unified_diff_and_writes_nothing(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    before = tree(tmp_path)
    result = sync(tmp_path, VALID.replace("10.100.2.10", "10.100.2.11"), "--dry-run")
    assert result.code == 0
    assert "--- a/host_vars/pro-dev.yml" in result.out
    assert "+++ b/host_vars/pro-dev.yml" in result.out
    assert "-instance_ip: 10.100.2.10" in result.out
    assert "+instance_ip: 10.100.2.11" in result.out
    assert "sync-dry: 1 files would be written, 6 unchanged" in result.out
    assert tree(tmp_path) == before


def test_dry_run_on_an_empty_tree_writes_nothing(tmp_path: Path) -> None:
    result = sync(tmp_path, VALID, "--dry-run")
    assert result.code == 0
    assert "+++ b/group_vars/all.yml" in result.out
    assert tree(tmp_path) == {}


def test_content_outside_markers_is_preserved_byte_for_byte(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    path = tmp_path / "host_vars/pro-dev.yml"
    text = path.read_text()
    _, rest = text.split(managed.START, 1)
    body, _ = rest.split(managed.END + "\n", 1)
    user_head = "---\n# my notes \xe9\r\nmy_var: 1\n"
    user_tail = "extra_var: [1, 2]   \n# trailing, no newline"
    path.write_bytes((user_head + managed.START + body + managed.END + "\n" + user_tail).encode())
    sync(tmp_path, VALID.replace("10.100.2.10", "10.100.2.12"))
    new = path.read_bytes().decode()
    assert new.startswith(user_head + managed.START)
    assert new.endswith(managed.END + "\n" + user_tail)
    assert "instance_ip: 10.100.2.12" in new


def test_file_without_markers_gets_a_section_appended(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir()
    own = "# hand written\nmy_secret_port: 2222"
    (tmp_path / "host_vars/pro-dev.yml").write_text(own)
    sync(tmp_path, VALID)
    text = (tmp_path / "host_vars/pro-dev.yml").read_text()
    assert text.startswith(own + "\n" + managed.START)
    assert _load(tmp_path, "host_vars/pro-dev.yml")["my_secret_port"] == 2222


def test_broken_markers_are_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    path = tmp_path / "host_vars/pro-dev.yml"
    path.write_text(path.read_text().replace(managed.END + "\n", ""))
    before = tree(tmp_path)
    result = sync(tmp_path, VALID.replace("10.100.0.10", "10.100.0.11"))
    assert result.code == 2
    assert "host_vars/pro-dev.yml:2: managed START marker without an END" in result.err
    assert tree(tmp_path) == before


def test_orphans_are_listed_on_every_sync(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    without_pro = VALID.split("  pro:\n")[0]
    for _ in range(2):
        result = sync(tmp_path, without_pro)
        assert result.code == 0
        assert "orphan: host_vars/pro-dev.yml (machine pro-dev, ephemeral: make sync-clean " \
               "deletes it)" in result.out
        assert "orphan: group_vars/pro.yml (domain pro, ephemeral" in result.out
    assert "host_vars/pro-dev.yml" in tree(tmp_path)


def test_a_stale_inventory_file_leaves_the_inventory_at_sync(tmp_path: Path) -> None:
    """ADR-053: Ansible acts on every host an inventory file lists, so the file of a
    removed domain goes at once (it holds only generated lines), even when protected."""
    sync(tmp_path, VALID)
    without_admin = VALID.replace(VALID[VALID.index("  admin:"):VALID.index("  pro:")], "")
    dry = sync(tmp_path, without_admin, "--dry-run")
    assert "would remove from the inventory: inventory/admin.yml" in dry.out
    assert "inventory/admin.yml" in tree(tmp_path)
    result = sync(tmp_path, without_admin)
    assert result.code == 0, result.err
    assert "removed from the inventory: inventory/admin.yml (domain admin" in result.out
    assert "1 stale inventory files removed" in result.out
    files = tree(tmp_path)
    assert "inventory/admin.yml" not in files
    assert {"group_vars/admin.yml", "host_vars/admin-ansible.yml"} <= set(files)
    again = sync(tmp_path, without_admin)
    assert "inventory" not in again.out
    assert "orphan: host_vars/admin-ansible.yml" in again.out


def test_a_stale_inventory_file_with_user_lines_stops_sync(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    inv = tmp_path / "inventory/pro.yml"
    inv.write_text(inv.read_text() + "# my note about pro\n")
    before = tree(tmp_path)
    result = sync(tmp_path, VALID.split("  pro:\n")[0])
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "inventory/pro.yml: domain pro is no longer in infra.yml but this inventory file "
        "holds lines of yours outside the managed section, so Ansible would still act on "
        "its hosts; move your lines elsewhere and delete the file"]
    assert tree(tmp_path) == before


def test_clean_orphans_deletes_ephemeral_ones(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    result = sync(tmp_path, VALID.split("  pro:\n")[0], "--clean-orphans")
    assert result.code == 0
    assert set(tree(tmp_path)) == EXPECTED - {"inventory/pro.yml", "group_vars/pro.yml",
                                              "host_vars/pro-dev.yml"}
    assert "1 stale inventory files removed, 2 orphans deleted" in result.out


def test_protected_orphans_need_force(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    without_admin = VALID.replace(VALID[VALID.index("  admin:"):VALID.index("  pro:")], "")
    result = sync(tmp_path, without_admin, "--clean-orphans")
    assert result.code == 0
    assert ("orphan: host_vars/admin-ansible.yml (machine admin-ansible, protected: use "
            "FORCE=1 with make sync-clean)") in result.out
    assert "host_vars/admin-ansible.yml" in tree(tmp_path)
    result = sync(tmp_path, without_admin, "--clean-orphans", "--force")
    assert "host_vars/admin-ansible.yml" not in tree(tmp_path)
    assert "inventory/admin.yml" not in tree(tmp_path)


def test_user_files_without_markers_are_never_orphans(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars/localhost.yml").write_text("ansible_connection: local\n")
    result = sync(tmp_path, VALID, "--clean-orphans", "--force")
    assert "orphan" not in result.out
    assert (tmp_path / "host_vars/localhost.yml").exists()


def test_output_dir_defaults_to_the_infra_files_directory(tmp_path: Path) -> None:
    sub = tmp_path / "proj"
    sub.mkdir()
    path = write_infra(sub, VALID)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert run(str(path)).code == 0
    finally:
        os.chdir(cwd)
    assert (sub / "group_vars/all.yml").exists()
    out = tmp_path / "elsewhere"
    assert run(str(path), "--output", str(out)).code == 0
    assert (out / "host_vars/pro-dev.yml").exists()


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    sync(tmp_path, VALID)
    sync(tmp_path, VALID.replace("10.100.2.10", "10.100.2.20"))
    assert not [f for f in tree(tmp_path) if f.endswith(".tmp")]


def test_interrupted_write_keeps_the_old_file_whole(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sync(tmp_path, VALID)
    before = tree(tmp_path)

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    result = sync(tmp_path, VALID.replace("10.100.2.10", "10.100.2.20"))
    assert result.code == 130
    assert tree(tmp_path) == before


def test_unwritable_output_is_one_line_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a directory")
    path = write_infra(tmp_path, VALID)
    result = run(str(path), "--output", str(blocker))
    assert result.code == 1
    assert "cannot" in result.err and len(result.err.splitlines()) == 1
    assert "Traceback" not in result.err


def test_missing_file_is_exit_2_without_traceback(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.yml"))
    assert result.code == 2
    assert result.err.strip().endswith("nope.yml: file not found; give the path of your infra "
                                       "file (default ./infra.yml)")


def test_directory_and_binary_inputs_are_exit_2(tmp_path: Path) -> None:
    assert run(str(tmp_path)).code == 2
    bad = tmp_path / "bin.yml"
    bad.write_bytes(b"domains: {}\n\xff\xfe\n")
    result = run(str(bad))
    assert result.code == 2 and "not valid UTF-8" in result.err


def test_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    """Root reads any file, so the CLI runs as an unprivileged user for this one."""
    path = write_infra(tmp_path, VALID)
    path.chmod(0)
    tmp_path.chmod(0o755)
    command = [sys.executable, str(REPO / "scripts" / "generate.py"), str(path)]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "inventory").exists()
