"""What a backend is told: the failing log trimmed to what matters, the files involved,
the contributor guide, and the reply format we can check.

Budgets keep a prompt within a local model's context window: the log's failure lines with
a few lines around them plus its tail, each file and the guide cut to a fixed size.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence

LOG_BUDGET = 12_000
FILE_BUDGET = 8_000
GUIDE_BUDGET = 6_000
MAX_FILES = 6
_AROUND = 3
_TAIL = 40
_FAILURE = re.compile(
    r"(FAILED|ERROR|Error|error:|fatal:|failed=[1-9]|Traceback|assert|Exception|"
    r"FAIL\b|E\s{3})")
# Repository-relative file names as tools print them: ``tests/test_x.py:12``, ``path.yml``.
_PATH = re.compile(r"(?<![\w./-])(/?[\w.-]+(?:/[\w.-]+)*\.(?:py|ya?ml|j2|sh|cfg|toml|ini|json))\b")

REPLY_FORMAT = """\
Reply with ONE unified diff in git format, inside a ```diff fenced block:
paths relative to the repository root with a/ and b/ prefixes (diff --git a/x b/x),
enough context lines for `git apply`. Touch only files inside the repository.
Keep the change minimal and in the project's style; explain in at most three lines
before the block."""


def _cut(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + f"\n[... {len(text) - budget} more characters cut ...]\n"


def trim_log(log: str, budget: int = LOG_BUDGET) -> str:
    """Keep the lines around failures and the tail; mark what was dropped."""
    lines = log.splitlines()
    keep: set[int] = set(range(max(0, len(lines) - _TAIL), len(lines)))
    for i, line in enumerate(lines):
        if _FAILURE.search(line):
            keep.update(range(max(0, i - _AROUND), min(len(lines), i + _AROUND + 1)))
    out: list[str] = []
    previous = -1
    for i in sorted(keep):
        if i != previous + 1:
            out.append(f"[... {i - previous - 1} lines ...]")
        out.append(lines[i])
        previous = i
    text = "\n".join(out) + "\n"
    # Over budget: the end of the log (the summary and the last failure) matters most.
    return text if len(text) <= budget else "[... cut ...]\n" + text[-budget:]


def _tracked(repo: str) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True,
                         check=False).stdout.decode("utf-8", "replace")
    return {p for p in out.split("\0") if p}


def files_involved(repo: str, log: str, extra: Sequence[str] = ()) -> list[str]:
    """Tracked files the log (or the task) names, in order of first mention."""
    tracked = _tracked(repo)
    root = os.path.realpath(repo) + os.sep
    found: list[str] = []
    for named in [*extra, *_PATH.findall(log)]:
        # Tracebacks name files by absolute path: those inside the repository count.
        rel = os.path.normpath(named[len(root):] if named.startswith(root) else named)
        if rel in tracked and rel not in found:
            found.append(rel)
    return found[:MAX_FILES]


def role_files(repo: str, role: str) -> list[str]:
    """A role's main task and default files, shown whenever its tests are the ones run."""
    names = ("tasks/main.yml", "defaults/main.yml", "meta/argument_specs.yml")
    return [f"roles/{role}/{n}" for n in names
            if role and os.path.isfile(os.path.join(repo, "roles", role, n))]


def _read(repo: str, rel: str, budget: int) -> str:
    try:
        with open(os.path.join(repo, rel), encoding="utf-8", errors="replace") as fh:
            return _cut(fh.read(), budget)
    except OSError:
        return ""


def guide_text(repo: str, guide: str) -> tuple[str, str]:
    """The contributor guide (ai.guide, default CONTRIBUTING.md, else README.md)."""
    for rel in (guide, "README.md"):
        if rel and os.path.isfile(os.path.join(repo, rel)):
            return rel, _read(repo, rel, GUIDE_BUDGET)
    return "", ""


def _files_block(repo: str, files: Sequence[str]) -> str:
    return "".join(f"\n--- file: {rel} ---\n{_read(repo, rel, FILE_BUDGET)}" for rel in files)


def fix_prompt(repo: str, guide: str, command: str, log: str, files: Sequence[str],
               history: str) -> str:
    """Ask for a patch that makes the failing tests pass."""
    name, text = guide_text(repo, guide)
    return (
        "You fix a failing test run in a git repository.\n"
        f"Test command: {command}\n\n"
        f"## Contributor guide ({name})\n{text}\n"
        f"## Failing output (trimmed)\n{trim_log(log)}\n"
        f"## Files involved\n{_files_block(repo, files)}\n"
        f"{history}"
        f"## Reply format\n{REPLY_FORMAT}\n"
    )


def develop_prompt(repo: str, guide: str, task: str, command: str, files: Sequence[str],
                   history: str) -> str:
    """Ask for a patch that implements a task, tests included."""
    name, text = guide_text(repo, guide)
    listing = "\n".join(sorted(_tracked(repo))[:400])
    return (
        "You implement a task in a git repository, with its tests.\n"
        f"## Task\n{task}\n\n"
        f"Test command that must pass: {command}\n\n"
        f"## Contributor guide ({name})\n{text}\n"
        f"## Tracked files\n{listing}\n"
        f"## Files named by the task\n{_files_block(repo, files)}\n"
        f"{history}"
        f"## Reply format\n{REPLY_FORMAT}\n"
    )


def history_note(attempt: int, reason: str, patch: str, log: str) -> str:
    """What the previous try did and why it was not kept, for the next prompt."""
    text = f"## Try {attempt} was not kept: {reason}\n"
    if patch:
        text += f"Its patch (reverted, the tree is back as it was):\n```diff\n{patch}```\n"
    if log:
        text += f"Test output with it (trimmed):\n{trim_log(log, LOG_BUDGET // 2)}\n"
    return text
