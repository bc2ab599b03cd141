"""Pull requests through the GitHub CLI, labelled ``ai-generated`` (created if missing)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence

LABEL = "ai-generated"
LABEL_COLOR = "BFD4F2"
LABEL_DESCRIPTION = "Proposed by make ai-test / ai-develop (an LLM); review before merging"


class GhError(Exception):
    """A gh command failed; the message is its one-line error."""


def _gh(repo: str, args: Sequence[str], env: Mapping[str, str]) -> str:
    proc = subprocess.run(["gh", *args], cwd=repo, capture_output=True, text=True,
                          env=dict(env), check=False)
    if proc.returncode != 0:
        raise GhError(f"gh {' '.join(args[:2])}: {' '.join((proc.stderr or proc.stdout).split())}")
    return proc.stdout


def ensure_label(repo: str, env: Mapping[str, str]) -> bool:
    """Create the label unless the repository has it; True when it was created."""
    listed = _gh(repo, ["label", "list", "--limit", "1000", "--json", "name"], env)
    try:
        names = {item["name"] for item in json.loads(listed or "[]")}
    except (ValueError, TypeError, KeyError) as exc:
        raise GhError(f"gh label list: unexpected output ({exc})") from None
    if LABEL in names:
        return False
    _gh(repo, ["label", "create", LABEL, "--color", LABEL_COLOR,
               "--description", LABEL_DESCRIPTION], env)
    return True


def open_pr(repo: str, base: str, head: str, title: str, body: str,
            env: Mapping[str, str]) -> str:
    """Open the pull request; its URL as gh prints it."""
    return _gh(repo, ["pr", "create", "--base", base, "--head", head, "--title", title,
                      "--body", body, "--label", LABEL], env).strip()
