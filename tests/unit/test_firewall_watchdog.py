"""The sys-firewall watchdog's process handling (scripts/firewall_watchdog.py, ADR-066):
start is idempotent, other arguments replace it, stop ends it, bad input is one line.

Its work against Incus (start a stopped firewall, restart an unhealthy one) is tested on
the real daemon in tests/integration/test_firewall_vm.py; here `incus` is a stand-in that
fails every call, so the watchdog finds nothing to act on and touches no daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit
SCRIPT = REPO / "scripts" / "firewall_watchdog.py"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "incus").write_text("#!/bin/sh\nexit 1\n")
    (fake / "incus").chmod(0o755)
    args = ["--project", "t12unit", "--instance", "sys-firewall", "--interval", "0.2",
            "--run-dir", str(tmp_path / "run"), "--log", str(tmp_path / "log")]
    environ = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    yield environ, args
    subprocess.run([sys.executable, str(SCRIPT), "stop", *args], env=environ,
                   capture_output=True, check=False)


def watchdog(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=environ,
                          capture_output=True, text=True, check=False, timeout=30)


def test_start_is_idempotent_and_stop_ends_it(env: tuple[dict[str, str], list[str]]) -> None:
    environ, args = env
    assert watchdog(environ, "start", *args).stdout.strip() == "started"
    assert watchdog(environ, "start", *args).stdout.strip() == "running"
    assert watchdog(environ, "status", *args).stdout.startswith("running (pid ")
    assert watchdog(environ, "start", *args, "--grace", "5").stdout.strip() == "started"
    assert watchdog(environ, "stop", *args, "--grace", "5").stdout.strip() == "stopped"
    assert watchdog(environ, "stop", *args).stdout.strip() == "not running"
    assert watchdog(environ, "status", *args).stdout.strip() == "not running"


@pytest.mark.parametrize("bad", [["--interval", "0"], ["--failures", "0"], ["--grace", "-1"]])
def test_bad_input_is_one_line_exit_2(env: tuple[dict[str, str], list[str]],
                                      bad: list[str]) -> None:
    environ, args = env
    proc = watchdog(environ, "start", *args, *bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("firewall_watchdog.py: error:")
