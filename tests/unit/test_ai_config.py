"""Bad input is one clear line (what, where, how to fix), exit 2, nothing run or written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from anklume.ai import cli, config
from tests.unit.ai_support import (
    MODULE_TEST,
    REPO,
    base_env,
    git_state,
    module_repo,
    tree_hashes,
)

pytestmark = pytest.mark.unit


def _refused(tmp_path: Path, repo: Path, env: dict[str, str], argv: list[str],
             capfd: pytest.CaptureFixture[str]) -> str:
    hashes, state = tree_hashes(repo), git_state(repo)
    assert cli.main(["--repo", str(repo), *argv], env) == 2
    captured = capfd.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert tree_hashes(repo) == hashes and git_state(repo) == state
    assert not (tmp_path / "sessions").exists()
    return captured.err.strip()


@pytest.mark.parametrize(("settings", "argv", "expected"), [
    ({"AI_MODE": "gpt"}, ["test"], "settings: ai.mode: unknown mode 'gpt'; use one of none,"),
    ({"AI_MODE": "remote"}, ["test"],
     "environment: ANTHROPIC_API_KEY: AI_MODE=remote with provider anthropic needs an API key"),
    ({"AI_MODE": "remote", "AI_REMOTE_PROVIDER": "openai"}, ["test"], "export OPENAI_API_KEY="),
    ({"AI_MODE": "local", "AI_SANDBOX": "runner"}, ["test"],
     "AI_SANDBOX=runner: AI_TEST_CMD runs on this machine, the runner runs make test-sandboxed"),
    ({"AI_MODE": "local", "AI_MAX_RETRIES": "0"}, ["test"],
     "environment: AI_MAX_RETRIES: 0 is not a whole number of at least 1"),
    ({"AI_MODE": "local", "AI_DRY_RUN": "maybe"}, ["test"], "'maybe' is not a boolean"),
    ({"AI_MODE": "claude-code", "PATH": "git only"}, ["test"],
     "`claude` is not installed; install Claude Code"),
    ({"AI_MODE": "aider", "PATH": "git only"}, ["test"], "`aider` is not installed"),
    ({"AI_MODE": "local", "AI_DRY_RUN": "false", "AI_AUTO_PR": "true", "PATH": "git only"},
     ["test"], "`gh` is not installed; install the GitHub CLI"),
    ({"AI_MODE": "local"}, ["develop"], "TASK: ai-develop needs a task"),
    ({"AI_MODE": "none"}, ["develop", "--task", "x"], "ai-develop needs a backend"),
    ({"AI_MODE": "local"}, ["test", "--role", "nope"], "ROLE: no role named 'nope' in roles/"),
])
def test_bad_settings_are_one_line_and_exit_2(settings: dict[str, str], argv: list[str],
                                              expected: str, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    env = base_env(tmp_path, "none", MODULE_TEST)
    env.update(settings)
    if env["PATH"] == "git only":  # a PATH without claude, aider or gh
        (tmp_path / "git-only").mkdir()
        (tmp_path / "git-only" / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
        env["PATH"] = str(tmp_path / "git-only")
    assert expected in _refused(tmp_path, repo, env, argv, capfd)


@pytest.mark.parametrize(("text", "expected"), [
    ("ai:\n  mode: [local\n", "anklume.conf.yml:"),
    ("ai:\n  mode: local\n  colour: red\n", "anklume.conf.yml:3: ai.colour: unknown setting"),
    ("ai:\n  anthropic_api_key: sk-ant-in-a-file\n",
     "anklume.conf.yml:2: ai.anthropic_api_key: secrets are never read from a file; "
     "delete it and export ANTHROPIC_API_KEY instead"),
    ("ai:\n  max_retries: three\n", "anklume.conf.yml:2: ai.max_retries: 'three' is not"),
    ("ai: local\n", "anklume.conf.yml:1: ai: is not a mapping"),
    ("- ai\n", "anklume.conf.yml: is not a mapping; write `ai:` followed by its keys"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(text: str, expected: str, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    (repo / "anklume.conf.yml").write_text(text)
    err = _refused(tmp_path, repo, base_env(tmp_path, "", MODULE_TEST), ["test"], capfd)
    assert err.startswith(expected) or expected in err
    assert "sk-ant-in-a-file" not in err


def test_dry_run_false_refuses_uncommitted_changes(tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b  # wip\n")
    env = base_env(tmp_path, "local", MODULE_TEST)
    env["AI_DRY_RUN"] = "false"
    assert "uncommitted changes to tracked files" in _refused(tmp_path, repo, env, ["test"],
                                                             capfd)


def test_file_then_environment_then_make_variable(tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    (repo / "anklume.conf.yml").write_text(
        "ai:\n  mode: local\n  max_retries: 5\n  anthropic_api_key: ''\n  dry_run: true\n")
    env = {"ANKLUME_AI_MAX_RETRIES": "4", "ANKLUME_AI_MODE": "aider", "AI_MODE": "local",
           "PATH": "/usr/bin:/bin"}
    cfg = config.load(str(repo), env)
    assert (cfg.mode, cfg.max_retries, cfg.dry_run, cfg.auto_pr) == ("local", 4, True, False)
    assert config.load(str(repo), {}).max_retries == 5


def test_the_shipped_config_is_the_safe_default() -> None:
    cfg = config.load(str(REPO), {"PATH": "/usr/bin:/bin"})
    assert (cfg.mode, cfg.dry_run, cfg.auto_pr, cfg.max_retries) == ("none", True, False, 3)
    assert cfg.ollama_url == "http://homelab-llm:11434"


def test_the_wrapper_reports_an_unknown_mode_in_one_line(tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    env = base_env(tmp_path, "bogus", MODULE_TEST)
    result = subprocess.run(["bash", str(REPO / "scripts" / "ai-test-loop.sh")], cwd=repo,
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "settings: ai.mode: unknown mode 'bogus'; use one of none, local, remote, claude-code, "
        "aider (AI_MODE= or anklume.conf.yml)"]
