"""auto_pr: the fix branch is pushed to a real (bare, local) remote and a pull request is
opened with the label ai-generated, created once when the repository lacks it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from anklume.ai import cli
from tests.unit.ai_support import (
    MODULE_TEST,
    ApiStandIn,
    api_env,
    base_env,
    calls,
    git,
    install_stand_ins,
    module_fix,
    module_repo,
)

pytestmark = pytest.mark.unit


def test_auto_pr_pushes_and_creates_the_missing_label_once(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = module_repo(tmp_path)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    git(repo, "remote", "add", "origin", str(bare))
    env = base_env(tmp_path, "local", MODULE_TEST)
    env.update({"AI_DRY_RUN": "false", "AI_AUTO_PR": "true"})
    log = install_stand_ins(tmp_path, env, ("gh",))
    with ApiStandIn("ollama", [f"```diff\n{module_fix(repo)}```"]) as api:
        env.update(api_env(api))
        first = cli.main(["--repo", str(repo), "test"], env)
        git(repo, "switch", "--quiet", "main")  # the bug is still there on main
        second = cli.main(["--repo", str(repo), "test"], env)
    out = capfd.readouterr().out
    assert (first, second) == (0, 0), out
    gh = [c["argv"] for c in calls(log, "gh")]
    assert [a[:2] for a in gh] == [["label", "list"], ["label", "create"], ["pr", "create"],
                                   ["label", "list"], ["pr", "create"]]
    assert gh[1][2] == "ai-generated" and out.count("created the label ai-generated") == 1
    for argv, head in ((gh[2], "fix/tests"), (gh[4], "fix/tests-2")):
        assert argv[argv.index("--label") + 1] == "ai-generated"
        assert argv[argv.index("--base") + 1] == "main"
        assert argv[argv.index("--head") + 1] == head
    pushed = git(bare, "branch", "--list", "--format=%(refname:short)").split()
    assert sorted(pushed) == ["fix/tests", "fix/tests-2"]
    assert git(bare, "rev-parse", "fix/tests-2") == git(repo, "rev-parse", "fix/tests-2")
    assert "pull request opened: https://github.invalid/example/pull/7" in out
