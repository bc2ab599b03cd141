"""scripts/incus-netns.sh refuses bad input with one line and exit 2, creating nothing.

The daemons themselves run in tests/integration/test_remote.py and test_cluster.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "incus-netns.sh"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["up", "Bad", "10.199.0.5"], "name 'Bad'"),
        (["up", "toolongname", "10.199.0.5"], "name 'toolongname'"),
        (["up", "t16u", "10.1.0.5"], "address '10.1.0.5'"),
        (["up", "t16u", "10.199.0.1"], "address '10.199.0.1'"),
        (["up", "t16u"], "usage: up NAME ADDRESS"),
        (["token", "t16u"], "usage: token NAME CLIENT"),
        (["bogus"], "unknown command 'bogus'"),
        ([], "unknown command ''"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          check=False, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert not Path("/run/netns/ank-t16u").exists()
    assert not Path("/var/lib/anklume-netns/t16u").exists()
