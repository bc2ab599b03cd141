"""``make ai-test AI_MODE=none`` is exactly the standard tests: same output, same status."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.ai_support import (
    MODULE_TEST,
    REPO,
    base_env,
    calls,
    install_stand_ins,
    module_fix,
    module_repo,
    tree_hashes,
)

pytestmark = pytest.mark.unit

WRAPPER = str(REPO / "scripts" / "ai-test-loop.sh")


def _wrapper(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", WRAPPER], cwd=repo, env=env, capture_output=True,
                          text=True, check=False)


@pytest.mark.parametrize("fixed", [False, True], ids=["failing", "passing"])
def test_mode_none_runs_the_test_command_as_it_is(fixed: bool, tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    if fixed:
        subprocess.run(["git", "apply"], input=module_fix(repo), text=True, cwd=repo,
                       check=True)
    env = base_env(tmp_path, "none", MODULE_TEST)
    before = tree_hashes(repo)
    direct = subprocess.run(MODULE_TEST, shell=True, cwd=repo, env=env, capture_output=True,
                            text=True, check=False)
    wrapped = _wrapper(repo, env)
    assert direct.returncode == (0 if fixed else 1)
    assert (wrapped.returncode, wrapped.stdout, wrapped.stderr) == \
        (direct.returncode, direct.stdout, direct.stderr)
    assert tree_hashes(repo) == before and not (tmp_path / "sessions").exists()


@pytest.mark.parametrize("status", [0, 3])
def test_mode_none_without_override_runs_make_test(status: int, tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    env = base_env(tmp_path, "none", "")
    log = install_stand_ins(tmp_path, env, ("make",))
    env["STANDIN_MAKE_STATUS"] = str(status)
    result = _wrapper(repo, env)
    assert result.returncode == status
    assert [c["argv"] for c in calls(log, "make")] == [["--no-print-directory", "test"]]
    assert [c["cwd"] for c in calls(log, "make")] == [str(repo)]


def test_make_test_is_the_readme_test_command_and_ai_test_calls_the_wrapper() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make test    # the whole test suite" in readme
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: .*\n\t@\$\(CHECK\) test && bash scripts/test\.sh$", makefile, re.M)
    assert re.search(r"^ai-test: .*\n\t@\$\(CHECK\) ai-test && PYTHON=\$\(PY\) bash "
                     r"scripts/ai-test-loop\.sh$", makefile, re.M)
    assert re.search(r"^ai-develop: .*\n\t@\$\(CHECK\) ai-develop && PYTHON=\$\(PY\) bash "
                     r"scripts/ai-develop\.sh$", makefile, re.M)


@pytest.mark.parametrize(("command", "status"),
                         [("echo tests-ran", 0), ("echo tests-ran; exit 3", 2)])
def test_the_make_target_itself_passes_the_result_through(command: str, status: int) -> None:
    """Through the real Makefile: make's own status (0, or 2 for a failed recipe, as for
    `make test`) and the test command's output."""
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "ai-test",
                           "AI_MODE=none", f"AI_TEST_CMD={command}"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "tests-ran"


@pytest.mark.parametrize(("role", "argv"), [
    ("", ["--no-print-directory", "test-sandboxed"]),
    ("base_system", ["--no-print-directory", "test-sandboxed", "ROLE=base_system"]),
])
def test_sandbox_runner_runs_the_tests_in_the_runner(role: str, argv: list[str],
                                                     tmp_path: Path) -> None:
    """AI_SANDBOX=runner: the tests are `make test-sandboxed` (stand-in make: the runner
    itself is proven by tests/integration/test_runner.py)."""
    repo = module_repo(tmp_path)
    (repo / "roles" / "base_system").mkdir(parents=True, exist_ok=True)
    env = base_env(tmp_path, "none", "")
    env["AI_SANDBOX"] = "runner"
    log = install_stand_ins(tmp_path, env, ("make",))
    env["STANDIN_MAKE_STATUS"] = "0"
    result = subprocess.run(["bash", WRAPPER], cwd=repo, env={**env, "ROLE": role},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert [c["argv"] for c in calls(log, "make")] == [argv]
