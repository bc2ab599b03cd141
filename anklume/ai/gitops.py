"""The few git operations of the loop, each one subprocess call, errors as GitError."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence


class GitError(Exception):
    """A git command failed; the message is its one-line error."""


def git(repo: str, args: Sequence[str], env: Mapping[str, str]) -> str:
    """Run ``git args`` in ``repo``; its stdout, or GitError."""
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          env=dict(env), check=False)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())
        raise GitError(f"git {' '.join(args[:2])}: {detail}")
    return proc.stdout


def toplevel(path: str, env: Mapping[str, str]) -> str:
    """The root of the work tree holding ``path``."""
    return git(path, ["rev-parse", "--show-toplevel"], env).strip()


def current_branch(repo: str, env: Mapping[str, str]) -> str:
    """The checked-out branch (empty on a detached HEAD)."""
    return git(repo, ["branch", "--show-current"], env).strip()


def tracked_changes(repo: str, env: Mapping[str, str]) -> str:
    """Uncommitted changes to tracked files (untracked and ignored files do not count)."""
    return git(repo, ["status", "--porcelain", "--untracked-files=no"], env)


def free_branch(repo: str, name: str, env: Mapping[str, str]) -> str:
    """``name``, or ``name-2``, ``name-3``... the first that does not exist yet."""
    existing = set(git(repo, ["branch", "--list", "--format=%(refname:short)"], env).split())
    candidate, n = name, 1
    while candidate in existing:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def create_branch(repo: str, name: str, env: Mapping[str, str]) -> None:
    """Create ``name`` at HEAD and switch to it (the working tree is kept)."""
    git(repo, ["switch", "--quiet", "-c", name], env)


def leave_branch(repo: str, back_to: str, name: str, env: Mapping[str, str]) -> None:
    """Switch back to ``back_to`` and delete ``name`` (it holds no commit of ours)."""
    git(repo, ["switch", "--quiet", back_to], env)
    git(repo, ["branch", "--quiet", "-D", name], env)


def commit(repo: str, paths: Sequence[str], message: str, env: Mapping[str, str]) -> str:
    """Commit exactly ``paths`` (added, changed or deleted); the new commit's hash."""
    git(repo, ["add", "-A", "--", *paths], env)
    git(repo, ["commit", "--quiet", "-m", message, "--", *paths], env)
    return git(repo, ["rev-parse", "HEAD"], env).strip()


def push(repo: str, remote: str, branch: str, env: Mapping[str, str]) -> None:
    """Push ``branch`` to ``remote`` and track it."""
    git(repo, ["push", "--quiet", "--set-upstream", remote, branch], env)
