"""Molecule scenarios (Phase 6): `molecule test` in every role that has one.

One case per role with a ``molecule/default/`` folder, found by glob: each scenario creates
its own objects (names ``t8*``, subnets 10.170.x.0/24, owner ``t8mol``), applies the role,
applies it again (0 changed), checks the real Incus state and deletes what it made. See
docs/testing.md.

Own lab: none (no fixture: each role's Molecule scenario creates its own t8* objects, owner
t8mol, and deletes them).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.incus_helpers import REPO, VENV_BIN

SCENARIOS = sorted((REPO / "roles").glob("*/molecule/default/molecule.yml"))
ROLES = [path.parents[2].name for path in SCENARIOS]
TAIL = 120


def molecule(role_dir: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }
    return subprocess.run(
        [str(VENV_BIN / "molecule"), *args],
        cwd=role_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def test_every_scenario_is_found() -> None:
    assert {"incus_networks", "incus_projects", "incus_instances", "base_system"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario(role: str) -> None:
    role_dir = REPO / "roles" / role
    # A state file left by an interrupted run would make molecule skip create: start clean.
    molecule(role_dir, "reset", timeout=120)
    proc = molecule(role_dir, "test", timeout=600)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-TAIL:])
        pytest.fail(f"molecule test in roles/{role} failed ({proc.returncode}):\n{tail}")
