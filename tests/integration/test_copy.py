"""make copy on the real Incus (ADR-085): the bytes arrive whole, a second copy never
overwrites, modes cross and owners do not, and what must not cross (a link to /etc, a
`..` name from a source that lies, a direction file_policies does not allow, a missing
path) is refused in one line, exit 2, with nothing left in the target.

One lab (owner ``t28copy``, domains ``t28ca`` with ``t28ca-one`` and ``t28ca-two``,
``t28cb`` with ``t28cb-one``, 10.131.x.0/24, nft table ``anklumet28c``; file_policies let
``t28ca-one`` send to ``t28cb`` only) is applied once and shared by every test.

Own lab: its file_policies and the files its tests plant in the containers (a fake tar
in t28ca-one among them) are this module's own; no other lab declares them.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anklume.ops import transfer
from tests.incus_helpers import lab_tree, sync_lab
from tests.integration.reconcile_lab import cleanup

OWNER = "t28copy"
PREFIX = "t28c"
BASE = "10.131"
TABLE = "anklumet28c"
PROJECT = {"t28ca-one": "t28ca", "t28ca-two": "t28ca", "t28cb-one": "t28cb"}


def description() -> dict[str, Any]:
    def box(n: int, d: int) -> dict[str, Any]:
        return {"type": "lxc", "ip": f"{BASE}.{d}.{n}"}

    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": ""},
        "domains": {
            "t28ca": {"subnet_id": 1, "ephemeral": True, "machines": {
                "t28ca-one": box(10, 1), "t28ca-two": box(11, 1)}},
            "t28cb": {"subnet_id": 2, "ephemeral": True, "machines": {
                "t28cb-one": box(10, 2)}},
        },
        "file_policies": [{"from": "t28ca-one", "to": "t28cb",
                           "description": "one way, from one machine"}],
    }


def sh(name: str, script: str, data: bytes | None = None) -> str:
    """SCRIPT in instance NAME (root, sh -c); its stdout. Fails the test when it fails."""
    proc = subprocess.run(["incus", "exec", "--project", PROJECT[name], name, "--",
                           "sh", "-c", script], input=data, capture_output=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, f"{name}: {script}: {proc.stderr.decode()}"
    return proc.stdout.decode()


def incoming(name: str) -> list[str]:
    """Everything under /root/Incoming of NAME, hidden names too, with owner and mode."""
    return sh(name, "[ -d /root/Incoming ] || exit 0; cd /root/Incoming && "
                    "find . -mindepth 1 -printf '%p %u %m\\n' | sort").splitlines()


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)

    def make(self, *args: str, rc: int = 0) -> tuple[str, list[str]]:
        """make ARGS in the lab: (stdout, stderr lines), after checking its exit status."""
        proc = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=self.root,
            input="", capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"})
        assert proc.returncode == rc, (f"make {' '.join(args)} exited {proc.returncode}, "
                                       f"want {rc}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout, proc.stderr.splitlines()

    def refused(self, *args: str) -> str:
        """The one line of a make copy that must be refused (exit 2)."""
        _, err = self.make("copy", *args, rc=2)
        lines = [ln for ln in err if not ln.startswith("make: ***")]
        assert len(lines) == 1, err
        return lines[0]


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, TABLE)
    lab = Lab(tmp_path_factory.mktemp("t28copy"))
    try:
        sync_lab(lab.root, description(), TABLE)
        lab.make("apply")
        for name in PROJECT:
            sh(name, "rm -rf /root/Incoming")
        yield lab
    finally:
        cleanup(PREFIX, TABLE)


def test_a_file_arrives_whole_and_a_second_copy_gets_a_new_name(lab: Lab) -> None:
    sh("t28ca-one", "head -c 3000000 /dev/urandom > /root/data.bin")
    want = sh("t28ca-one", "sha256sum < /root/data.bin").split()[0]
    out, _ = lab.make("copy", "FROM=t28ca-one:/root/data.bin", "TO=t28ca-two")
    assert out.splitlines() == [
        f"{want}       3000000  data.bin",
        "copy: t28ca-one:/root/data.bin -> t28ca-two:/root/Incoming/t28ca-one/data.bin "
        "(1 file, 3000000 bytes)"]
    sh("t28ca-one", "echo changed > /root/data.bin")
    out, _ = lab.make("copy", "FROM=t28ca-one:/root/data.bin", "TO=t28ca-two")
    assert out.splitlines()[-1].startswith(
        "copy: t28ca-one:/root/data.bin -> t28ca-two:/root/Incoming/t28ca-one/data.bin.1 ")
    got = sh("t28ca-two", "cd /root/Incoming/t28ca-one && sha256sum data.bin data.bin.1")
    assert got.split()[0::2] == [want, hashlib.sha256(b"changed\n").hexdigest()]
    assert "./t28ca-one/data.bin root 644" in incoming("t28ca-two")


def test_a_folder_keeps_its_modes_and_lands_owned_by_root(lab: Lab) -> None:
    sh("t28ca-one", "rm -rf /root/tree && mkdir -p /root/tree/sub && cd /root/tree && "
                    "echo run > run.sh && echo key > sub/key && ln -s ../run.sh sub/up && "
                    "chmod 750 . && chmod 755 run.sh && chmod 700 sub && chmod 600 sub/key && "
                    "chown -R 1000:1000 /root/tree")
    out, _ = lab.make("copy", "FROM=t28ca-one:/root/tree", "TO=t28cb-one")  # the policy
    assert out.splitlines()[-1] == ("copy: t28ca-one:/root/tree -> t28cb-one:/root/Incoming/"
                                    "t28ca-one/tree (2 files, 8 bytes)")
    got = sh("t28cb-one", "cd /root/Incoming/t28ca-one && "
                          "find tree -printf '%p %u:%g %m %l\\n' | sort")
    assert got.splitlines() == ["tree root:root 750 ", "tree/run.sh root:root 755 ",
                                "tree/sub root:root 700 ", "tree/sub/key root:root 600 ",
                                "tree/sub/up root:root 777 ../run.sh"]


def test_a_link_to_etc_is_refused_with_nothing_written(lab: Lab) -> None:
    sh("t28ca-one", "rm -rf /root/bad && mkdir -p /root/bad && echo a > /root/bad/a && "
                    "ln -s /etc /root/bad/etc")
    before = incoming("t28ca-two")
    line = lab.refused("FROM=t28ca-one:/root/bad", "TO=t28ca-two")
    assert line == ("make copy: copy of /root/bad in t28ca-one refused: 'bad/etc' is a "
                    "symbolic link to the absolute path '/etc'; nothing was written to "
                    "/root/Incoming/t28ca-one in t28ca-two")
    assert incoming("t28ca-two") == before


def test_a_dotdot_name_from_a_lying_source_is_refused_with_nothing_written(lab: Lab) -> None:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        for name, data in (("loot", None), ("loot/ok", b"fine"), ("loot/../../etc/x", b"0")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.REGTYPE if data else tarfile.DIRTYPE
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data else None)
    # The source's tar answers with that archive: what a compromised instance could send.
    sh("t28ca-one", "cat > /root/evil.tar && mkdir -p /root/loot && "
                    "printf '#!/bin/sh\\ncat /root/evil.tar\\n' > /usr/local/bin/tar && "
                    "chmod 755 /usr/local/bin/tar", evil.getvalue())
    before = incoming("t28ca-two")
    try:
        line = lab.refused("FROM=t28ca-one:/root/loot", "TO=t28ca-two")
    finally:
        sh("t28ca-one", "rm -f /usr/local/bin/tar /root/evil.tar")
    assert line.startswith("make copy: copy of /root/loot in t28ca-one refused: "
                           "'loot/../../etc/x' has a '..', '.' or empty component;")
    assert incoming("t28ca-two") == before
    assert sh("t28ca-two", "ls /etc/x 2>&1 || true").strip().endswith("No such file or directory")


def test_a_copy_file_policies_do_not_allow_is_refused_with_nothing_written(lab: Lab) -> None:
    sh("t28cb-one", "echo secret > /root/secret")
    sh("t28ca-two", "echo other > /root/other")
    before = incoming("t28ca-one")
    assert lab.refused("FROM=t28cb-one:/root/secret", "TO=t28ca-one") == (
        "make copy: no file_policies entry allows copies from t28cb-one (domain t28cb) to "
        "t28ca-one (domain t28ca); add `- {from: t28cb, to: t28ca}` (or the machines) to "
        "file_policies in infra.yml, then make sync")
    # The policy names t28ca-one, not its domain.
    assert lab.refused("FROM=t28ca-two:/root/other", "TO=t28cb-one").startswith(
        "make copy: no file_policies entry allows copies from t28ca-two")
    assert incoming("t28ca-one") == before


def test_a_missing_source_path_is_one_line(lab: Lab) -> None:
    assert lab.refused("FROM=t28ca-one:/root/nothing-here", "TO=t28ca-two") == (
        "make copy: /root/nothing-here in t28ca-one does not exist; check the path "
        "(make exec lists folders)")


def test_the_host_side_api_pushes_and_pulls(lab: Lab, tmp_path: Path) -> None:
    box = transfer.Endpoint("t28cb-one", "t28cb")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f").write_bytes(b"to the box")
    (tmp_path / "in" / "f").chmod(0o640)
    pushed = transfer.push_from_host(tmp_path / "in", box, "/root/Incoming/host")
    assert pushed.landed == "/root/Incoming/host/in"
    assert pushed.files == [transfer.File("in/f", 10, hashlib.sha256(b"to the box").hexdigest())]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in").mkdir()  # taken: the pull lands beside it
    pulled = transfer.pull_to_host(box, "/root/Incoming/host/in", tmp_path / "out")
    assert pulled.landed == str(tmp_path / "out" / "in.1")
    assert (tmp_path / "out" / "in.1" / "f").read_bytes() == b"to the box"
    assert (tmp_path / "out" / "in.1" / "f").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in", "in.1"]
