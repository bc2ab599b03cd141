"""Which tests ``make ai-test`` runs, and running them with their output shown and kept.

No override: the project's own test command, ``make test`` (README, "The two commands").
``ROLE=<name>``: that role's Molecule scenario through ``make molecule ROLE=<name>``, or
``make test`` for a role without one. ``AI_TEST_CMD`` (or ``ai.test_command``) replaces
both: a shell command line, run from the repository root. ``AI_SANDBOX=runner``: the tests
run in the Incus-in-Incus runner (``make test-sandboxed [ROLE=]``, which pushes the tree
with each try's patch), never beside the user's projects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from anklume.errors import InputError, Problem

PROJECT_TEST_COMMAND = ["make", "--no-print-directory", "test"]


@dataclass(frozen=True)
class TestCommand:
    """An argument list and how to show it."""

    argv: list[str]
    label: str


def resolve(repo: str, role: str, override: str, sandbox: str = "none") -> TestCommand:
    """The command for this session; an unknown role is a user error."""
    if role and not os.path.isdir(os.path.join(repo, "roles", role)):
        raise InputError([Problem("ROLE", None, "", f"no role named {role!r} in roles/",
                                  "give a folder name of roles/, or no ROLE")])
    if sandbox == "runner":
        argv = ["make", "--no-print-directory", "test-sandboxed"]
        argv += [f"ROLE={role}"] if role else []
        return TestCommand(argv, " ".join(argv))
    if override:
        return TestCommand(["bash", "-c", override], override)
    if role:
        scenario = os.path.join(repo, "roles", role, "molecule", "default", "molecule.yml")
        if os.path.exists(scenario):
            argv = ["make", "--no-print-directory", "molecule", f"ROLE={role}"]
            return TestCommand(argv, " ".join(argv))
    return TestCommand(PROJECT_TEST_COMMAND, " ".join(PROJECT_TEST_COMMAND))


def run_plain(cmd: TestCommand, repo: str, env: Mapping[str, str]) -> int:
    """AI_MODE=none: the standard tests as they are, output untouched, same exit status."""
    return subprocess.run(cmd.argv, cwd=repo, env=dict(env), check=False).returncode


def run_captured(cmd: TestCommand, repo: str, env: Mapping[str, str],
                 redact: Callable[[str], str]) -> tuple[int, str]:
    """Run, showing each line (redacted) as it comes, and return the status and the log."""
    lines: list[str] = []
    with subprocess.Popen(cmd.argv, cwd=repo, env=dict(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            sys.stdout.write(redact(line))
        sys.stdout.flush()
    return proc.returncode, "".join(lines)
