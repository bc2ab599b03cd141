"""Bad input to `make backup`, `make backup-verify` and `make restore-backup` (ADR-087): each
refused in one line, exit 2, before Incus is asked anything and with nothing written. The
`incus` first on PATH only records that it was called (it must not be); the backups
themselves run on the real Incus in tests/integration/test_backup.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anklume.ops import backup_archive as archive
from anklume.ops import backup_crypt as crypt
from anklume.ops import main
from tests.incus_helpers import guard_incus
from tests.unit.gen_support import sync

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit

INFRA = """\
project_name: t30bu
global: {base_subnet: "10.100"}
domains:
  t30ba:
    subnet_id: 1
    machines: {t30ba-box: {ip: "10.100.1.10"}}
domain_templates:
  lab:
    count: 2
    first_subnet_id: 20
"""


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert sync(tmp_path, INFRA).code == 0
    monkeypatch.setenv("PATH", f"{guard_incus(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    plain = tmp_path / "plain.anklume-backup"
    with crypt.writer(plain, None) as stream:
        archive.Writer(stream).close({"domain": "t30ba", "instances": []})
    return tmp_path


def encrypted(root: Path) -> Path:
    if shutil.which("age") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("age is not installed: scripts/host.sh installs it")
        pytest.skip("age is not installed here (apt-get install age)")
    key = root / "id.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    path = root / "enc.anklume-backup.age"
    with crypt.writer(path, ["-r", public]) as stream:
        archive.Writer(stream).close({"domain": "t30ba", "instances": []})
    return path


CASES = [
    ("backup", {}, "make backup: DOMAIN= or I= is required"),
    ("backup", {"DOMAIN": "t30bz"}, "make backup: unknown domain DOMAIN=t30bz"),
    ("backup", {"I": "t30ba-bx"}, "make backup: I=t30ba-bx is no declared instance"),
    ("backup", {"DOMAIN": "t30ba", "OUT": "/nonexistent"},
     "make backup: OUT=/nonexistent is not a directory here"),
    ("backup", {"DOMAIN": "t30ba", "ENCRYPT": "hunter2"},
     "make backup: ENCRYPT=hunter2 is neither an age recipient"),
    ("backup", {"DOMAIN": "t30ba", "SNAPSHOTS": "maybe"},
     "make backup: SNAPSHOTS=maybe is not a yes or a no"),
    ("backup", {"DOMAIN": "t30ba", "KEY": "x"}, "make backup: KEY= is not read here"),
    ("backup-verify", {}, "make backup-verify: FILE= is required"),
    ("backup-verify", {"FILE": "/nonexistent/a.anklume-backup"},
     "make backup-verify: FILE=/nonexistent/a.anklume-backup is not a file here"),
    ("backup-verify", {"FILE": "plain.anklume-backup", "KEY": "/nonexistent/id.txt"},
     "make backup-verify: KEY=/nonexistent/id.txt is not a file here"),
    ("restore-backup", {}, "make restore-backup: FILE= is required"),
    ("restore-backup", {"FILE": "/nonexistent/a"},
     "make restore-backup: FILE=/nonexistent/a is not a file here"),
    ("restore-backup", {"FILE": "plain.anklume-backup", "AS": "t30bb"},
     "make restore-backup: domain t30bb is not declared in this tree; its part of infra.yml "
     "is in plain-as-t30bb.infra.yml"),
    ("restore-backup", {"FILE": "nomatch*.anklume-backup"},
     "make restore-backup: FILE=nomatch*.anklume-backup matches no file here"),
    ("restore-backup", {"FILE": "plain.anklume-backup", "FORCE": "please"},
     "make restore-backup: FORCE=please is not a yes or a no"),
]


def run(target: str, values: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    flags = " ".join(f"{k}={v}" for k, v in values.items())
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main([target])
    return rc, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(("target", "values", "line"), CASES)
def test_bad_input_is_one_line_exit_2_and_asks_incus_nothing(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        target: str, values: dict[str, str], line: str) -> None:
    rc, err = run(target, values, monkeypatch, capsys)
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert not (tree / "calls").exists(), "Incus was asked"
    assert not (tree / "backups").exists() or not any((tree / "backups").iterdir())


def test_an_encrypted_archive_without_key_or_a_plain_one_with_a_key(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = encrypted(tree)
    for target in ("backup-verify", "restore-backup"):
        rc, err = run(target, {"FILE": str(path)}, monkeypatch, capsys)
        assert rc == 2 and len(err) == 1, err
        assert "is encrypted with age and KEY= is not given" in err[0], err
        rc, err = run(target, {"FILE": "plain.anklume-backup", "KEY": str(tree / "id.txt")},
                      monkeypatch, capsys)
        assert rc == 2 and len(err) == 1 and "is not encrypted, yet KEY= is given" in err[0]
    assert not (tree / "calls").exists(), "Incus was asked"


def test_a_good_archive_verifies_and_a_foreign_domain_is_offered_not_merged(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = encrypted(tree)
    # A process of its own: a runner's Context prints its success to the sys.stdout of
    # its import, which an earlier test's capture has closed.
    proc = subprocess.run([sys.executable, "-m", "anklume.ops", "backup-verify"], cwd=tree,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MAKELEVEL": "1",
                               "MAKEFLAGS": f" -- FILE={path} KEY={tree / 'id.txt'}"})
    assert proc.returncode == 0, proc.stderr
    want = f"backup-verify: {path}: good: 0 members, 0 bytes, domain t30ba"
    assert proc.stdout.startswith(want), proc.stdout
    other = tree / "t30bq.anklume-backup"
    with crypt.writer(other, None) as stream:
        w = archive.Writer(stream)
        w.add_bytes("infra.yml", b"domains:\n  t30bq: {subnet_id: 9}\n")
        w.close({"domain": "t30bq", "instances": []})
    before = (tree / "infra.yml").read_bytes()
    rc, err = run("restore-backup", {"FILE": str(other)}, monkeypatch, capsys)
    assert rc == 2 and len(err) == 1, err
    assert "domain t30bq is not declared in this tree" in err[0], err
    assert (tree / "t30bq.infra.yml").read_text() == "domains:\n  t30bq: {subnet_id: 9}\n"
    assert (tree / "infra.yml").read_bytes() == before
    assert not (tree / "calls").exists(), "Incus was asked"


def test_a_pattern_is_checked_archive_by_archive(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """FILE='*...': every archive it names is checked before any is read; AS= takes one."""
    shutil.copy(tree / "plain.anklume-backup", tree / "plain2.anklume-backup")
    rc, err = run("restore-backup", {"FILE": "plain*", "AS": "t30bb"}, monkeypatch, capsys)
    assert rc == 2 and err == ["make restore-backup: AS= takes one archive, and "
                               "FILE=plain* names 2; restore them one by one, "
                               "each with its AS="], err
    encrypted(tree)
    rc, err = run("backup-verify", {"FILE": "*.anklume-backup*"}, monkeypatch, capsys)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("make backup-verify: FILE=*.anklume-backup* "
                             "(enc.anklume-backup.age) is encrypted with age"), err
    assert not (tree / "calls").exists(), "Incus was asked"
