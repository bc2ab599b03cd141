"""The guardrails: a patch is checked before anything, unusable replies and failing
patches are counted tries, max_retries stops the loop, secrets never reach a file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from anklume.ai import cli, patch
from tests.unit.ai_support import (
    MODULE_TEST,
    SECRET_OPENAI,
    ApiStandIn,
    api_env,
    base_env,
    diff_of,
    git,
    git_state,
    iter_texts,
    module_fix,
    module_repo,
    session_files,
    tree_hashes,
)

pytestmark = pytest.mark.unit

OUTSIDE = """\
diff --git a/{p} b/{p}
--- a/{p}
+++ b/{p}
@@ -1 +1 @@
-x
+y
"""


def _rewrite_path(diff: str, old: str, new: str) -> str:
    return diff.replace(f"a/{old}", f"a/{new}").replace(f"b/{old}", f"b/{new}")


@pytest.mark.parametrize(("path", "why"), [
    ("/etc/passwd", "absolute path"),
    ("../outside.py", "climbs out with '..'"),
    ("sub/../../outside.py", "climbs out with '..'"),
    (".git/hooks/pre-commit", "git's own metadata"),
    ("escape/evil.py", "a symlink leads outside"),
])
def test_a_patch_touching_a_path_outside_the_repository_is_rejected(
        path: str, why: str, tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", repo / "escape")
    with pytest.raises(patch.PatchRejected, match=why):
        patch.check(str(repo), f"```diff\n{OUTSIDE.format(p=path)}```", dict(os.environ))
    assert not (tmp_path / "elsewhere" / "evil.py").exists()


@pytest.mark.parametrize(("reply", "why"), [
    ("I think the bug is in add(), try a plus sign.", "holds no unified diff"),
    ("```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def nope():\n-    pass\n"
     "+    return 1\n```", "git apply --check refuses"),
    ('```diff\ndiff --git "a/x y" "b/x y"\n```', "quoted path"),
])
def test_a_reply_that_is_not_a_usable_patch_is_rejected(reply: str, why: str,
                                                        tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    with pytest.raises(patch.PatchRejected, match=why):
        patch.check(str(repo), reply, dict(os.environ))


def test_the_fix_is_found_with_or_without_a_fence(tmp_path: Path) -> None:
    repo = module_repo(tmp_path)
    fix = module_fix(repo)
    for reply in (fix, f"Explanation.\n```diff\n{fix}```\nDone.", f"Here:\n{fix}"):
        assert patch.check(str(repo), reply, dict(os.environ)).paths == ("calc.py",)


def _run_local(tmp_path: Path, repo: Path, replies: list[str], dry_run: bool,
               capfd: pytest.CaptureFixture[str]) -> tuple[int, str, ApiStandIn]:
    env = base_env(tmp_path, "local", MODULE_TEST)
    env["AI_DRY_RUN"] = "true" if dry_run else "false"
    with ApiStandIn("ollama", replies) as api:
        env.update(api_env(api))
        status = cli.main(["--repo", str(repo), "test"], env)
    return status, capfd.readouterr().out, api


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("target", ["/tmp/anklume-ai-evil.py", "../evil.py"])
def test_replies_with_outside_paths_are_failed_tries_and_touch_nothing(
        target: str, dry_run: bool, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    evil = _rewrite_path(module_fix(repo), "calc.py", target)
    hashes, state = tree_hashes(repo), git_state(repo)
    status, out, api = _run_local(tmp_path, repo, [evil], dry_run, capfd)
    assert status == 1 and len(api.requests) == 3
    assert out.count("patch rejected") == 3 and "max_retries (3) reached" in out
    assert tree_hashes(repo) == hashes and git_state(repo) == state
    assert not Path("/tmp/anklume-ai-evil.py").exists() and not (tmp_path / "evil.py").exists()


def test_a_garbage_reply_is_reported_and_counted(tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    fix = module_fix(repo)
    status, out, api = _run_local(tmp_path, repo, ["Sorry, I cannot help.", f"```diff\n{fix}```"],
                                  False, capfd)
    assert status == 0 and len(api.requests) == 2
    assert "try 1: patch rejected: the reply holds no unified diff" in out
    assert "Try 1 was not kept: patch rejected" in api.requests[1]["body"]["prompt"]
    assert git(repo, "branch", "--show-current").strip() == "fix/tests"


def test_max_retries_reached_reverts_reports_and_fails(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    wrong = diff_of(repo, "calc.py", "a - b", "a * b")  # applies, tests still fail
    hashes, state = tree_hashes(repo), git_state(repo)
    status, out, api = _run_local(tmp_path, repo, [wrong], False, capfd)
    assert status == 1 and len(api.requests) == 3
    assert out.count("the tests still fail (exit 1); patch reverted") == 3
    assert "FAILED: max_retries (3) reached; no change was kept" in out
    assert "a * b" in api.requests[2]["body"]["prompt"]  # earlier tries are told
    assert tree_hashes(repo) == hashes and git_state(repo) == state  # back on main, no branch
    logged = session_files(tmp_path / "sessions")
    assert sorted(k.rsplit("/", 1)[1] for k in logged if "/test-" in k) == [
        "test-0.log", "test-1.log", "test-2.log", "test-3.log"]
    report = next(v for k, v in logged.items() if k.endswith("/report.txt"))
    assert "max_retries (3) reached" in report and "exit status: 1" in report


def test_an_unreachable_backend_stops_at_once(tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = base_env(tmp_path, "local", MODULE_TEST)
    env["ANKLUME_AI_OLLAMA_URL"] = f"http://127.0.0.1:{port}"
    assert cli.main(["--repo", str(repo), "test"], env) == 1
    out = capfd.readouterr().out
    assert "cannot reach" in out and "try 2" not in out


def test_a_secret_in_the_failing_log_never_reaches_a_file_or_the_backend(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    env = base_env(tmp_path, "remote", f'echo "token is $OPENAI_API_KEY"; {MODULE_TEST}')
    env["AI_DRY_RUN"] = "false"
    with ApiStandIn("openai", [f"```diff\n{module_fix(repo)}```"]) as api:
        env.update(api_env(api))
        status = cli.main(["--repo", str(repo), "test"], env)
    out = capfd.readouterr().out
    assert status == 0
    sessions = tmp_path / "sessions"
    texts = list(iter_texts(sessions))
    assert len(texts) >= 6 and not any(SECRET_OPENAI in t for t in texts)
    logged = session_files(sessions)
    for name in ("test-0.log", "test-1.log", "prompt-1.txt"):
        text = next(v for k, v in logged.items() if k.endswith("/" + name))
        assert "token is [redacted:OPENAI_API_KEY]" in text
    assert SECRET_OPENAI not in str(api.requests[0]["body"]) and SECRET_OPENAI not in out
    assert api.requests[0]["headers"]["authorization"] == f"Bearer {SECRET_OPENAI}"
    assert SECRET_OPENAI not in git(repo, "log", "-p", "--all")
