"""Bad input to the test runner's scripts: one clear line, exit code 2, nothing started.

`scripts/run-tests.sh` checks ROLE and TESTS before it creates or reaches any runner, and
`scripts/runner_tree.py` wants exactly one archive path.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import pytest

from tests.incus_helpers import REPO, VENV_BIN

pytestmark = pytest.mark.unit


def run_tests(**env: str) -> subprocess.CompletedProcess[str]:
    # A PATH without incus or ansible: a check that came too late would fail differently.
    return subprocess.run(["bash", str(REPO / "scripts" / "run-tests.sh")],
                          capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"),
                               "PYTHON": "/nonexistent/python", **env})


@pytest.mark.parametrize(("env", "says"), [
    ({"ROLE": "no_such_role"}, "ROLE=no_such_role has no Molecule scenario"),
    ({"ROLE": "incus_nftables"}, "ROLE=incus_nftables has no Molecule scenario"),
    ({"TESTS": "tests/integration/test_nothing.py"}, "tests/integration/test_nothing.py"),
])
def test_run_tests_refuses_bad_input_in_one_line(env: dict[str, str], says: str) -> None:
    proc = run_tests(**env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("test-sandboxed: error: ") and says in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [[], ["a", "b"], ["--help"]])
def test_runner_tree_wants_one_archive_path(args: list[str]) -> None:
    proc = subprocess.run([str(VENV_BIN / "python"), str(REPO / "scripts" / "runner_tree.py"),
                           *args], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "runner-tree: error: usage: scripts/runner_tree.py ARCHIVE\n"


def _archive(files: dict[str, bytes], mtime: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_tree_digest_ignores_mtimes_and_git_but_not_content() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import runner_tree
    finally:
        sys.path.remove(str(REPO / "scripts"))
    digest = runner_tree.content_digest
    same = digest(_archive({"Makefile": b"all:\n", ".git/index": b"one"}, 1))
    assert digest(_archive({"Makefile": b"all:\n", ".git/index": b"two"}, 2)) == same
    assert digest(_archive({"Makefile": b"all: x\n", ".git/index": b"one"}, 1)) != same
