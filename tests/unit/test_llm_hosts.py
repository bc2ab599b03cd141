"""`make apply-llm` limits the apply to the machines with an LLM service role
(scripts/llm_hosts.py reads the rendered host_vars)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.incus_helpers import REPO
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

INFRA = """\
project_name: t
global:
  base_subnet: "10.100"
domains:
  ai:
    subnet_id: 3
    machines:
      ai-llm: {ip: "10.100.3.10", roles: [base_system, ollama_server]}
      ai-web: {ip: "10.100.3.11", roles: [open_webui]}
      ai-other: {roles: [base_system]}
"""


def hosts(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts/llm_hosts.py"), str(root)],
                          capture_output=True, text=True, check=False)


def test_only_the_llm_machines_are_listed(tmp_path: Path) -> None:
    assert sync(tmp_path, INFRA).code == 0
    proc = hosts(tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ai-llm,ai-web"


def test_no_llm_machine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert sync(tmp_path, INFRA.replace("ollama_server", "dev_test_runner")
                .replace("open_webui", "admin_bootstrap")).code == 0
    proc = hosts(tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no machine in infra.yml has the" in proc.stderr
