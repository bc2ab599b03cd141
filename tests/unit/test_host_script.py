"""scripts/host.sh refuses clearly what it cannot do, before changing anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit
HOST_SH = str(REPO / "scripts" / "host.sh")


def test_refuses_to_run_without_root() -> None:
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", HOST_SH],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "must run as root" in proc.stderr


def test_refuses_an_unsupported_distribution(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nVERSION_ID="40"\nPRETTY_NAME="Fedora Linux 40"\n')
    proc = subprocess.run(
        ["bash", HOST_SH],
        capture_output=True,
        text=True,
        check=False,
        env={"ANKLUME_OS_RELEASE": str(release), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert proc.returncode == 2
    assert "unsupported distribution Fedora Linux 40" in proc.stderr
