"""A reader that goes away ends a script quietly: `make sync-dry | head -1` is no error.

The scripts run for real, their stdout a real pipe: no message on stderr, exit 0, and no
"Exception ignored ... BrokenPipeError" from the interpreter's exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anklume.errors import guarded
from tests.incus_helpers import REPO
from tests.unit.gen_support import sync, write_infra

pytestmark = pytest.mark.unit

GENERATE = str(REPO / "scripts" / "generate.py")
# 200 domains of 3 machines: a dry-run diff of several hundred KiB, far beyond a pipe's
# 64 KiB buffer, so the writer meets the closed pipe for sure.
LARGE = """\
project_name: big
domains:
  admin:
    subnet_id: 0
domain_templates:
  class:
    count: 200
    first_subnet_id: 20
    digits: 3
    machines:
      srv: {ip_host: 10, roles: [base_system]}
      web: {ip_host: 11}
      db: {ip_host: 12}
"""


def _closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


def test_a_large_dry_run_read_by_head_1_ends_with_exit_0_and_no_message(
        tmp_path: Path) -> None:
    infra = write_infra(tmp_path, LARGE)
    proc = subprocess.Popen([sys.executable, GENERATE, str(infra), "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert first.startswith(b"template class: 200 domains")
    assert (code, err) == (0, "")
    assert not (tmp_path / "inventory").exists()  # a dry run still writes nothing


def test_a_sync_whose_stdout_reader_is_gone_still_writes_the_tree(tmp_path: Path) -> None:
    infra = write_infra(tmp_path, LARGE)
    out = _closed_pipe()
    try:
        proc = subprocess.run([sys.executable, GENERATE, str(infra)], stdout=out,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    finally:
        os.close(out)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (tmp_path / "host_vars" / "class200-db.yml").is_file()


def test_a_sync_started_with_stdout_closed_writes_the_tree_quietly(tmp_path: Path) -> None:
    infra = write_infra(tmp_path, LARGE)
    # sh closes fd 1, then runs the generator: Python starts with no stdout at all.
    proc = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" "$1" "$2" >&-', sys.executable, GENERATE, str(infra)],
        capture_output=True, text=True, check=False, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (tmp_path / "inventory" / "class001.yml").is_file()


def test_a_bad_input_still_reports_when_stdout_is_gone(tmp_path: Path) -> None:
    infra = write_infra(tmp_path, LARGE.replace("count: 200", "count: 900"))
    out = _closed_pipe()
    try:
        proc = subprocess.run([sys.executable, GENERATE, str(infra), "--dry-run"], stdout=out,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    finally:
        os.close(out)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{infra}:")


def test_the_llm_hosts_script_ends_quietly_without_a_reader(tmp_path: Path) -> None:
    infra = "domains:\n  ai:\n    subnet_id: 3\n    machines:\n" + "".join(
        f"      ai-{n}: {{roles: [ollama_server]}}\n" for n in range(400))
    assert sync(tmp_path, infra).code == 0
    out = _closed_pipe()
    try:
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "llm_hosts.py"),
                               str(tmp_path)], stdout=out, stderr=subprocess.PIPE, text=True,
                              check=False, timeout=60)
    finally:
        os.close(out)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_broken_pipe_that_is_not_stdout_is_still_a_bug_to_report(
        capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert guarded(work, "nothing written") == 70
    assert "internal error: BrokenPipeError" in capsys.readouterr().err
