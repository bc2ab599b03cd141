"""Every backend fixes a scratch copy of a role: dry run changes nothing, dry_run false
commits the fix on fix/<slug> after a passing re-run.

The role's test is a real ansible-playbook run on localhost. The backends are reached
through stand-ins (ai_support): loopback HTTP servers that check the request shape, and
`claude`/`aider` executables on PATH that record their arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anklume.ai import cli
from tests.unit.ai_support import (
    ROLE_TEST,
    SECRET_ANTHROPIC,
    SECRET_OPENAI,
    ApiStandIn,
    api_env,
    base_env,
    calls,
    git,
    git_state,
    install_stand_ins,
    role_fix,
    role_repo,
    session_files,
    tree_hashes,
)

pytestmark = pytest.mark.unit

BACKENDS = ["local", "remote-anthropic", "remote-openai", "claude-code", "aider"]


@contextlib.contextmanager
def backend(name: str, tmp: Path, repo: Path, fix: str) -> Iterator[tuple[dict[str, str],
                                                                          Any]]:
    """The environment of a run against ``name`` and what records its requests."""
    mode = name.split("-")[0] if name.startswith("remote") else name
    env = base_env(tmp, mode, ROLE_TEST)
    reply = f"The default has a typo.\n```diff\n{fix}```\n"
    if name.startswith(("local", "remote")):
        kind = {"local": "ollama", "remote-anthropic": "anthropic",
                "remote-openai": "openai"}[name]
        with ApiStandIn(kind, [reply]) as api:
            env.update(api_env(api))
            yield env, api
        return
    log = install_stand_ins(tmp, env, ("claude", "aider"))
    (tmp / "reply.txt").write_text(reply)
    (tmp / "fix.diff").write_text(fix)
    env.update({"STANDIN_REPLY": str(tmp / "reply.txt"), "STANDIN_PATCH": str(tmp / "fix.diff")})
    yield env, log


def assert_request_shape(name: str, recorder: Any, dry_run: bool) -> None:
    """The backend was called once, the way its real counterpart expects."""
    if name == "local":
        (req,) = recorder.requests
        assert req["path"] == "/api/generate"
        assert req["body"]["model"] == "tiny-coder" and req["body"]["stream"] is False
        assert "Helo" in req["body"]["prompt"]
    elif name == "remote-anthropic":
        (req,) = recorder.requests
        assert req["path"] == "/v1/messages"
        assert req["headers"]["x-api-key"] == SECRET_ANTHROPIC
        assert req["headers"]["anthropic-version"] == "2023-06-01"
        assert req["headers"]["content-type"] == "application/json"
        body = req["body"]
        assert body["model"] and body["max_tokens"] > 0
        assert body["messages"][0]["role"] == "user" and "Helo" in body["messages"][0]["content"]
    elif name == "remote-openai":
        (req,) = recorder.requests
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["authorization"] == f"Bearer {SECRET_OPENAI}"
        assert req["body"]["model"] == "gpt-4o"
        assert "Helo" in req["body"]["messages"][-1]["content"]
    elif name == "claude-code":
        (call,) = calls(recorder, "claude")
        argv = call["argv"]
        assert argv[:2] == ["-p", "--output-format"] and "Helo" in call["stdin"]
        allowed = argv[argv.index("--allowedTools") + 1].split(",")
        assert "Bash" in argv[argv.index("--disallowedTools") + 1]
        if dry_run:
            assert sorted(allowed) == ["Glob", "Grep", "Read"]
        else:
            assert "Edit" in allowed
    else:
        (call,) = calls(recorder, "aider")
        argv = call["argv"]
        assert argv[argv.index("--model") + 1] == "ollama_chat/qwen2.5-coder:32b"
        assert "--no-auto-commits" in argv and "Helo" in argv[argv.index("--message") + 1]
        assert "roles/greeting/defaults/main.yml" in argv
    if name in ("claude-code", "aider"):  # they ran in a throwaway copy, not in the tree
        assert not Path(calls(recorder, name.split("-")[0])[0]["cwd"]).exists()


@pytest.mark.parametrize("name", BACKENDS)
def test_dry_run_prints_the_fix_and_leaves_the_tree_byte_identical(
        name: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = role_repo(tmp_path)
    fix = role_fix(repo)
    hashes, state = tree_hashes(repo), git_state(repo)
    with backend(name, tmp_path, repo, fix) as (env, recorder):
        status = cli.main(["--repo", str(repo), "test", "--role", "greeting"], env)
        assert_request_shape(name, recorder, dry_run=True)
    out = capfd.readouterr().out
    assert status == 1  # the tests still fail: the fix is only proposed
    assert "+greeting_word: Hello" in out and "dry run" in out
    assert tree_hashes(repo) == hashes and git_state(repo) == state
    logged = session_files(tmp_path / "sessions")
    assert any(k.endswith("/patch-1.diff") and v == fix for k, v in logged.items())
    assert any(k.endswith("/prompt-1.txt") and "Contributing" in v for k, v in logged.items())


@pytest.mark.parametrize("name", BACKENDS)
def test_applied_fix_is_committed_on_a_fix_branch_after_a_passing_rerun(
        name: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = role_repo(tmp_path)
    fix = role_fix(repo)
    main_head = git(repo, "rev-parse", "main")
    with backend(name, tmp_path, repo, fix) as (env, recorder):
        env["AI_DRY_RUN"] = "false"
        status = cli.main(["--repo", str(repo), "test", "--role", "greeting"], env)
        assert_request_shape(name, recorder, dry_run=False)
    out = capfd.readouterr().out
    assert status == 0, out
    assert git(repo, "branch", "--show-current").strip() == "fix/greeting"
    assert git(repo, "rev-parse", "main") == main_head
    assert git(repo, "rev-list", "--count", "main..fix/greeting").strip() == "1"
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split("\n")[:3] == [
        "Fix greeting (make ai-test)", "", "roles/greeting/defaults/main.yml"]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    logged = session_files(tmp_path / "sessions")
    rerun = next(v for k, v in logged.items() if k.endswith("/test-1.log"))
    assert "failed=0" in rerun and "ok=" in rerun  # the real re-run passed with the fix
    assert git(repo, "show", "HEAD:roles/greeting/defaults/main.yml") == \
        "---\ngreeting_word: Hello\n"
