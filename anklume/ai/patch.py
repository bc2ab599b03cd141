"""A reply is checked before anything: a unified diff, paths inside the repository only,
and ``git apply --check`` clean. Anything else is a :class:`PatchRejected` (a failed try).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

_FENCE = re.compile(r"```(?:diff|patch|udiff)?[ \t]*\n(.*?)```", re.S)
_START = re.compile(r"^(diff --git |--- )", re.M)
# (pattern, groups holding a path, whether those paths carry git's a/ b/ prefixes)
_HEADERS = (
    (re.compile(r"^diff --git (\S+) (\S+)$", re.M), (1, 2), True),
    (re.compile(r"^(?:---|\+\+\+) (\S+)", re.M), (1,), True),
    (re.compile(r"^(?:rename|copy) (?:from|to) (.+)$", re.M), (1,), False),
)
# Lines of a diff naming a path git quotes (odd characters): refused, never guessed.
_QUOTED = re.compile(r'^(?:diff --git|---|\+\+\+|rename|copy) .*"', re.M)


class PatchRejected(Exception):
    """The reply cannot be used; the message says why (one line)."""


@dataclass(frozen=True)
class Patch:
    """A checked patch and the repository paths it touches."""

    text: str
    paths: tuple[str, ...]


def extract(reply: str) -> str:
    """The unified diff in a reply: a fenced ```diff block, or the reply from its first
    ``diff --git``/``---`` line."""
    block: str
    for block in _FENCE.findall(reply):
        if _START.search(block):
            return block if block.endswith("\n") else block + "\n"
    match = _START.search(reply)
    if match is None:
        raise PatchRejected("the reply holds no unified diff")
    text = reply[match.start():].split("\n```", 1)[0]
    return text if text.endswith("\n") else text + "\n"


def _strip_prefix(raw: str) -> str:
    return raw[2:] if raw.startswith(("a/", "b/")) else raw


def paths_of(diff: str) -> tuple[str, ...]:
    """Every path a diff names (headers, renames, copies), without a/ b/ prefixes."""
    if _QUOTED.search(diff):
        raise PatchRejected("the patch names a quoted path; only plain repository paths "
                            "are accepted")
    found: list[str] = []
    for pattern, groups, prefixed in _HEADERS:
        for match in pattern.finditer(diff):
            for g in groups:
                raw = match.group(g).strip()
                path = _strip_prefix(raw) if prefixed and raw != "/dev/null" else raw
                if path != "/dev/null" and path not in found:
                    found.append(path)
    if not found:
        raise PatchRejected("the patch names no file")
    return tuple(found)


def check_inside(repo: str, path: str) -> None:
    """Refuse absolute paths, ``..``, ``.git`` and anything a symlink leads outside."""
    parts = path.split("/")
    if os.path.isabs(path) or path.startswith("~"):
        raise PatchRejected(f"the patch touches {path}, an absolute path outside the repository")
    if ".." in parts:
        raise PatchRejected(f"the patch touches {path}, which climbs out with '..'")
    if ".git" in parts:
        raise PatchRejected(f"the patch touches {path}, inside git's own metadata")
    root = os.path.realpath(repo)
    target = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, target]) != root:
        raise PatchRejected(f"the patch touches {path}, which a symlink leads outside "
                            "the repository")


def _git_apply(repo: str, diff: str, env: Mapping[str, str], *flags: str) -> str:
    proc = subprocess.run(["git", "apply", "--recount", "--whitespace=nowarn", *flags, "-"],
                          cwd=repo, input=diff.encode(), capture_output=True,
                          env=dict(env), check=False)
    if proc.returncode != 0:
        return " ".join(proc.stderr.decode("utf-8", "replace").split()) or "git apply failed"
    return ""


def check(repo: str, reply: str, env: Mapping[str, str]) -> Patch:
    """The usable patch in ``reply``, or PatchRejected saying why not."""
    diff = extract(reply)
    paths = paths_of(diff)
    for path in paths:
        check_inside(repo, path)
    failure = _git_apply(repo, diff, env, "--check")
    if failure:
        raise PatchRejected(f"git apply --check refuses the patch: {failure}")
    return Patch(diff, paths)


def apply(repo: str, patch: Patch, env: Mapping[str, str]) -> None:
    """Apply a checked patch to the working tree."""
    failure = _git_apply(repo, patch.text, env)
    if failure:
        raise PatchRejected(f"git apply failed: {failure}")


def revert(repo: str, patch: Patch, env: Mapping[str, str]) -> None:
    """Undo an applied patch, leaving the tree as before it."""
    failure = _git_apply(repo, patch.text, env, "--reverse")
    if failure:
        raise PatchRejected(f"git apply --reverse failed: {failure}")
