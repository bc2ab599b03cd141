"""The bulk reads one playbook run shares between its tasks (module_utils/shared_reads.py,
ADR-077), through IncusClient itself.

The `incus` binary here is a stand-in script (the client's `binary`) that logs each call
and answers a fixed JSON: what is under test is which reads reach it, not Incus. The
real daemon is read through the same path by every integration test's apply, which runs
with the anklume_reads callback that ansible.cfg enables."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit

IC = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_client")
SR = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.shared_reads")

NETWORKS = "/1.0/networks?recursion=1"
STATE = {"recursion": 2, "all-projects": "true"}


@pytest.fixture
def incus(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in `incus` that logs its arguments and answers [{"name": "n"}]."""
    log = tmp_path / "calls.log"
    binary = tmp_path / "incus"
    binary.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\necho '[{{\"name\": \"n\"}}]'\n")
    binary.chmod(0o755)
    return binary, log


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the anklume_reads callback would name for one playbook run."""
    folder = tmp_path / "reads"
    folder.mkdir()
    monkeypatch.setenv(SR.ENV, str(folder))
    return folder


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def client(binary: Path, remote: str = "local") -> object:
    return IC.IncusClient(remote=remote, binary=str(binary), socket="")


def test_without_a_run_folder_every_read_is_live(incus: tuple[Path, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    binary, log = incus
    monkeypatch.delenv(SR.ENV, raising=False)
    client(binary).networks()
    client(binary).networks()
    assert len(calls(log)) == 2


def test_the_next_task_is_served_once_then_reads_live(incus: tuple[Path, Path],
                                                      run: Path) -> None:
    binary, log = incus
    first = client(binary)
    assert first.networks() == {"n": {"name": "n"}}
    assert first.calls == 1 and len(calls(log)) == 1
    second = client(binary)
    assert second.networks() == {"n": {"name": "n"}}
    assert second.calls == 0 and len(calls(log)) == 1  # served: no call made
    second.networks()  # asking again is polling: live
    assert second.calls == 1 and len(calls(log)) == 2
    first.networks()  # the reader itself also reads live the second time
    assert len(calls(log)) == 3


def test_a_write_by_any_client_ends_sharing_for_the_run(incus: tuple[Path, Path],
                                                        run: Path) -> None:
    binary, log = incus
    client(binary).networks()
    client(binary).query("/1.0/networks", "POST", data={"name": "x"})
    for _ in range(2):
        client(binary).networks()
    assert [c.split()[2] for c in calls(log)] == ["GET", "POST", "GET", "GET"]
    assert (run / SR.WRITTEN).exists()


def test_only_the_bulk_lists_are_shared(incus: tuple[Path, Path], run: Path) -> None:
    binary, log = incus
    for _ in range(2):
        client(binary).get("/1.0/instances/web", project="pro")
        client(binary).get("/1.0/operations", params={"recursion": 1})
    assert len(calls(log)) == 4
    assert not list(run.glob("*.json"))


def test_an_old_answer_is_not_served(incus: tuple[Path, Path], run: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    binary, log = incus
    client(binary).networks()
    monkeypatch.setattr(SR, "MAX_AGE", -1.0)
    client(binary).networks()
    assert len(calls(log)) == 2


def test_the_list_with_state_answers_the_list_without(incus: tuple[Path, Path],
                                                      run: Path) -> None:
    binary, log = incus
    client(binary).get("/1.0/instances", params=STATE)
    client(binary).instances(state=False)
    assert len(calls(log)) == 1


def test_the_list_without_state_does_not_answer_the_list_with(incus: tuple[Path, Path],
                                                              run: Path) -> None:
    binary, log = incus
    client(binary).instances(state=False)
    client(binary).instances(state=True)  # lacks state, snapshots, backups: read live
    assert len(calls(log)) == 2


def test_each_remote_keeps_its_own_answers(incus: tuple[Path, Path], run: Path) -> None:
    binary, log = incus
    client(binary).networks()
    client(binary, remote="far").networks()
    client(binary, remote="far").networks()
    assert [c.split()[-1] for c in calls(log)] == [NETWORKS, f"far:{NETWORKS}"]


def test_a_folder_gone_mid_run_reads_live(incus: tuple[Path, Path], run: Path) -> None:
    binary, log = incus
    reader = client(binary)
    (run / "x").write_text("")
    for path in run.iterdir():
        os.remove(path)
    run.rmdir()
    reader.networks()
    client(binary).networks()
    assert len(calls(log)) == 2


def test_the_answers_kept_are_the_json_incus_gave(incus: tuple[Path, Path], run: Path) -> None:
    binary, _ = incus
    client(binary).networks()
    kept = [json.loads(p.read_text()) for p in run.glob("*.json")]
    assert [k["answer"] for k in kept] == [[{"name": "n"}]]


CALLBACK_PLAY = """\
- name: One task that reads the run's folder
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Show the folder the task's worker inherited, and that it exists
      ansible.builtin.command: >-
        sh -c 'test -d "$ANKLUME_SHARED_READS" && echo "$ANKLUME_SHARED_READS"'
      register: folder
      changed_when: false
    - name: Print it
      ansible.builtin.debug: {msg: "FOLDER={{ folder.stdout }}"}
"""


def test_the_callback_gives_the_run_a_folder_and_removes_it(tmp_path: Path) -> None:
    """A real ansible-playbook run on localhost with the project's ansible.cfg."""
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "play.yml").write_text(CALLBACK_PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
           "ANSIBLE_INVENTORY": "localhost,", "ANSIBLE_NOCOLOR": "1", "PYTHONWARNINGS": "ignore"}
    env.pop(SR.ENV, None)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "play.yml"],
                          cwd=tmp_path, env=env, text=True, capture_output=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"FOLDER=(\S+)", proc.stdout)
    assert found, proc.stdout
    folder = Path(found.group(1))
    assert folder.name.startswith("anklume-reads.")
    assert not folder.exists()  # removed when the run ended


def test_the_folder_of_an_interrupted_run_goes_at_the_next_start(tmp_path: Path) -> None:
    """A run killed before its end leaves its folder; the next run's start removes it,
    and never the folder of a run still going (here: this test's own process)."""
    tmp = Path(tempfile.gettempdir())
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = tmp / f"anklume-reads.{gone.pid}.leftover"
    live = tmp / f"anklume-reads.{os.getpid()}.running"
    for folder in (left, live):
        folder.mkdir(exist_ok=True)
        (folder / "answer.json").write_text("{}")
    try:
        test_the_callback_gives_the_run_a_folder_and_removes_it(tmp_path)
        assert not left.exists()
        assert live.exists()
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
