"""make copy's refusals (anklume/ops/copy.py): each is one line and exit 2, before any file
moves. The tree is synced by the real generator; an `incus` first on PATH answers the one
instance query from a file and records every other call, so a test can tell that no copy
started. The copies themselves run on the real Incus in tests/integration/test_copy.py."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from anklume.ops import main
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

INFRA = """\
project_name: t28cu
global: {base_subnet: "10.100"}
domains:
  ua:
    subnet_id: 1
    machines: {ua-one: {}, ua-two: {}}
  ub:
    subnet_id: 2
    machines: {ub-one: {}}
file_policies:
  - {from: ua-two, to: ub}
"""

FAKE = """#!PYTHON
import json, os, sys
if sys.argv[1] == "query":
    print(open(os.environ["FAKE_STATE"]).read())
    sys.exit(0)
with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(1)
"""


def instance(name: str, project: str, status: str = "Running") -> dict[str, Any]:
    return {"name": name, "project": project, "status": status,
            "config": {"user.anklume.managed": "true", "user.anklume.owner": "t28cu"}}


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert sync(tmp_path, INFRA).code == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "incus"
    fake.write_text(FAKE.replace("PYTHON", sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "state.json").write_text(json.dumps(
        [instance("ua-one", "ua"), instance("ua-two", "ua"),
         instance("ub-one", "ub", status="Stopped")]))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         **values: str) -> tuple[int, list[str]]:
    """make copy VALUES as make runs it: (exit status, stderr lines)."""
    flags = " ".join(f"{k}={v}" for k, v in values.items())
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main(["copy"])
    return rc, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(("values", "line"), [
    ({"FROM": "ua-one", "TO": "ua-two"},
     "make copy: FROM=ua-one names no path; write FROM=<instance>:<path>, e.g. make copy "
     "FROM=pro-dev:/root/report.pdf TO=perso-desktop"),
    ({"FROM": "ua-one:", "TO": "ua-two"}, "make copy: FROM=ua-one: names no path;"),
    ({"FROM": "ua-one:notes", "TO": "ua-two"},
     "make copy: FROM=ua-one:notes: 'notes' is a relative path; give the absolute path"),
    ({"FROM": "ua-on:/root/x", "TO": "ua-two"},
     "make copy: FROM: 'ua-on' is no instance of this tree; did you mean 'ua-one'? "
     "make status lists them"),
    ({"FROM": "ua-one:/root/x", "TO": "nobody"},
     "make copy: TO: 'nobody' is no instance of this tree; make status lists them"),
    ({"FROM": "ua-one:/root/x", "TO": "ua-two:/tmp"},
     "make copy: TO=ua-two:/tmp is not an instance name"),
    ({"FROM": "ua-one:/root/x", "TO": "ua-one"},
     "make copy: FROM and TO both name ua-one: a copy to itself"),
    ({"FROM": "ua-one:/", "TO": "ua-two"},
     "make copy: '/' names no file or folder of its own"),
    ({"FROM": "ua-one:/root/x", "TO": "ub-one"},
     "make copy: no file_policies entry allows copies from ua-one (domain ua) to ub-one "
     "(domain ub); add `- {from: ua, to: ub}`"),
    ({"FROM": "ub-one:/root/x", "TO": "ua-two"},  # the policy is one way
     "make copy: no file_policies entry allows copies from ub-one (domain ub) to ua-two"),
    ({"FROM": "ua-two:/root/x", "TO": "ub-one"},  # allowed, but ub-one is stopped
     "make copy: instance ub-one (project ub) is Stopped; make start I=ub-one"),
    ({"FROM": "ua-one:/root/x"}, "make copy: TO= is required"),
])
def test_a_bad_copy_is_one_line_exit_2_and_copies_nothing(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        values: dict[str, str], line: str) -> None:
    rc, err = copy(monkeypatch, capsys, **values)
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert "Traceback" not in err[0]
    assert not (tree / "calls").exists()  # no incus exec: nothing was read nor written


def test_an_instance_missing_from_incus_is_refused(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "state.json").write_text(json.dumps([instance("ua-one", "ua")]))
    rc, err = copy(monkeypatch, capsys, FROM="ua-one:/root/x", TO="ua-two")
    assert (rc, err) == (2, ["make copy: instance ua-two does not exist in project ua: "
                             "make apply creates it"])
    assert not (tree / "calls").exists()


def test_an_allowed_copy_reaches_incus_exec(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = copy(monkeypatch, capsys, FROM="ua-one:/root/x", TO="ua-two")
    assert rc == 1  # the stand-in fails every exec: a failure, not a user's error
    assert err == ["make copy: writing into /root/Incoming/ua-one in ua-two failed (exit 1): "
                   "no message; nothing new was left there"]
    calls = sorted(json.loads(c) for c in (tree / "calls").read_text().splitlines())
    head = ["exec", "--mode=non-interactive", "--project", "ua"]
    assert [c[:6] + c[-2:] for c in calls] == [
        [*head, "ua-one", "--", "sh", "/root/x"],
        [*head, "ua-two", "--", "/root/Incoming/ua-one", "x"]]
