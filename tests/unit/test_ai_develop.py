"""make ai-develop TASK=...: the backend implements the task; dry run changes nothing,
dry_run false commits it on feat/<slug> once the tests pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from anklume.ai import cli
from tests.unit.ai_support import (
    MODULE_TEST,
    ApiStandIn,
    api_env,
    base_env,
    git,
    git_state,
    module_fix,
    module_repo,
    tree_hashes,
)

pytestmark = pytest.mark.unit

TASK = "Make add() in calc.py return the sum"


@pytest.mark.parametrize("dry_run", [True, False])
def test_develop_implements_the_task(dry_run: bool, tmp_path: Path,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    hashes, state = tree_hashes(repo), git_state(repo)
    env = base_env(tmp_path, "local", MODULE_TEST)
    env["AI_DRY_RUN"] = str(dry_run).lower()
    with ApiStandIn("ollama", [f"```diff\n{module_fix(repo)}```"]) as api:
        env.update(api_env(api))
        status = cli.main(["--repo", str(repo), "develop", "--task", TASK], env)
    out = capfd.readouterr().out
    assert status == 0, out
    prompt = api.requests[0]["body"]["prompt"]
    assert TASK in prompt and "return a - b" in prompt  # the file the task names is shown
    if dry_run:
        assert "+    return a + b" in out
        assert tree_hashes(repo) == hashes and git_state(repo) == state
    else:
        branch = "feat/make-add-in-calc-py-return-the-sum"
        assert git(repo, "branch", "--show-current").strip() == branch
        assert git(repo, "log", "-1", "--format=%s").strip() == TASK
        assert "return a + b" in git(repo, "show", "HEAD:calc.py")
