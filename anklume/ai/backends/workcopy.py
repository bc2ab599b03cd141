"""Backends that edit files (claude-code, aider) work on a throwaway copy, never the tree.

The copy holds the repository's tracked and untracked-but-not-ignored files and a
baseline commit; what the tool changed comes back as ``git diff`` of the copy, so these
backends return a diff like the others and go through the same checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from anklume.ai.backends.base import BackendError

# Files the tools write for themselves (chat history, caches): never part of the patch.
TOOL_FILES = (".aider*", ".claude/")
_GIT_ID = ["-c", "user.name=anklume-ai", "-c", "user.email=anklume-ai@localhost",
           "-c", "commit.gpgsign=false"]


def _git(where: str, args: list[str], env: Mapping[str, str], data: bytes = b"") -> bytes:
    proc = subprocess.run(["git", *_GIT_ID, *args], cwd=where, input=data,
                          capture_output=True, env=dict(env), check=False)
    if proc.returncode != 0:
        raise BackendError(f"work copy: git {args[0]}: "
                           f"{' '.join(proc.stderr.decode('utf-8', 'replace').split())}")
    return proc.stdout


@contextmanager
def work_copy(repo: str, env: Mapping[str, str]) -> Iterator[str]:
    """A temporary copy of the working tree with a baseline commit; removed afterwards."""
    listing = _git(repo, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], env)
    copy = tempfile.mkdtemp(prefix="anklume-ai-")
    try:
        for rel in sorted({p for p in listing.decode().split("\0") if p}):
            source = os.path.join(repo, rel)
            if not os.path.lexists(source):  # deleted but not yet committed
                continue
            target = os.path.join(copy, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        _git(copy, ["init", "--quiet"], env)
        with open(os.path.join(copy, ".git", "info", "exclude"), "a", encoding="utf-8") as fh:
            fh.write("\n".join(TOOL_FILES) + "\n")
        _git(copy, ["add", "-A"], env)
        _git(copy, ["commit", "--quiet", "--allow-empty", "--no-verify", "-m", "baseline"], env)
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def changes(copy: str, env: Mapping[str, str]) -> str:
    """What was changed in the copy since its baseline, as a git diff (a/ b/ prefixes)."""
    _git(copy, ["add", "-A"], env)
    return _git(copy, ["diff", "--cached", "--no-color", "--no-ext-diff"], env).decode(
        "utf-8", "replace")


def reply_with_changes(diff: str, output: str) -> str:
    """The reply of an editing tool: the diff of its edits first, then what it printed."""
    return f"```diff\n{diff}```\n\n{output}" if diff.strip() else output


def run_tool(argv: list[str], cwd: str, env: Mapping[str, str], timeout: int,
             stdin: str = "") -> str:
    """Run a backend CLI; its output, or BackendError (a missing tool is fatal)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True,
                              env=dict(env), timeout=timeout, check=False)
    except FileNotFoundError:
        raise BackendError(f"`{argv[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"`{argv[0]}` gave no answer within {timeout} s",
                           fatal=False) from None
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())[-500:]
        raise BackendError(f"`{argv[0]}` exited with status {proc.returncode}: {detail}",
                           fatal=False)
    return proc.stdout
