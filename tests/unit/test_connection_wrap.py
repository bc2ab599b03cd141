"""The anklume_incus connection's command wrapper (plugins/connection/anklume_incus.py),
run by a real shell here instead of inside an instance: the answer kept for a read-back,
and a pipelined module that runs only when its whole input arrived.

A cut input is what an `incus exec` that fails under load (exit 255, nothing printed) can
leave: python3 then ran an empty program, exit 0, and Ansible failed with "Module result
deserialization failed" (seen in the test runner's create during a full test run).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_collections.anklume.incus.plugins.connection import anklume_incus as conn

pytestmark = pytest.mark.unit


@pytest.fixture
def answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "answers"
    monkeypatch.setattr(conn, "ANSWERS", str(folder))
    return folder


def sh(script: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], input=stdin.decode(), capture_output=True,
                          text=True, check=False)


def test_a_whole_input_runs_the_command_once_and_keeps_its_answer(answers: Path,
                                                                   tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    program = f"import pathlib; pathlib.Path({str(ran)!r}).write_text('x'); print('{{}}')\n"
    proc = sh(conn.wrap("python3", "tok1", len(program.encode())), program.encode())
    assert conn.Connection._answer("tok1", proc.stdout, proc.stderr) == (0, "{}\n", "")
    assert ran.read_text() == "x"
    again = sh(conn.reread("tok1"), b"")
    assert conn.Connection._answer("tok1", again.stdout, again.stderr) == (0, "{}\n", "")


@pytest.mark.parametrize("cut", [0, 10])
def test_a_cut_input_runs_nothing_and_reads_back_as_never_started(answers: Path,
                                                                  tmp_path: Path,
                                                                  cut: int) -> None:
    ran = tmp_path / "ran"
    program = f"import pathlib; pathlib.Path({str(ran)!r}).write_text('x'); print('{{}}')\n"
    proc = sh(conn.wrap("python3", "tok2", len(program.encode())), program.encode()[:cut])
    assert proc.returncode == 97 and proc.stdout == ""
    assert not ran.exists()
    assert sh(conn.reread("tok2"), b"").returncode == 3  # exec_command starts it once more


def test_a_command_without_input_is_wrapped_as_before(answers: Path) -> None:
    proc = sh(conn.wrap("echo hi; exit 3", "tok3"), b"")
    assert conn.Connection._answer("tok3", proc.stdout, proc.stderr) == (3, "hi\n", "")
