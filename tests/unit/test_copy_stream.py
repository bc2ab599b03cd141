"""The transfer's two shell sides (anklume/ops/transfer.py SEND and RECEIVE) run here on the
host, without Incus, with the host's sh and tar: the copy lands in the first free name,
keeps modes, and a refused or failed copy leaves no file and no folder behind. The same
scripts run inside the instances in tests/integration/test_copy.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import transfer

pytestmark = pytest.mark.unit


def copy(source: Path, into: Path) -> transfer.Report:
    name = source.name
    return transfer._stream(["sh", "-c", transfer.SEND, "sh", str(source)], f"{source}",
                            ["sh", "-c", transfer.RECEIVE, "sh", str(into), name],
                            f"{into}", name)


def everything(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    top = tmp_path / "src" / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "run.sh").write_bytes(b"#!/bin/sh\n")
    (top / "run.sh").chmod(0o750)
    (top / "sub" / "big").write_bytes(os.urandom(300_000))
    (top / "sub" / "up").symlink_to("../run.sh")
    (top / "sub").chmod(0o700)
    return top


def test_a_tree_lands_whole_then_beside_itself(tree: Path, tmp_path: Path) -> None:
    into = tmp_path / "dst" / "Incoming" / "src-box"
    first = copy(tree, into)
    assert first.landed == f"{into}/tree"
    big = (tree / "sub" / "big").read_bytes()
    assert sorted(first.files) == [  # in tar's (the folder's) order
        transfer.File("tree/run.sh", 10, hashlib.sha256(b"#!/bin/sh\n").hexdigest()),
        transfer.File("tree/sub/big", 300_000, hashlib.sha256(big).hexdigest())]
    assert first.total == 300_010
    assert (into / "tree" / "sub" / "big").read_bytes() == big
    assert (into / "tree" / "run.sh").stat().st_mode & 0o7777 == 0o750
    assert (into / "tree" / "sub").stat().st_mode & 0o7777 == 0o700
    assert os.readlink(into / "tree" / "sub" / "up") == "../run.sh"
    assert copy(tree, into).landed == f"{into}/tree.1"
    (into / "tree.2").symlink_to("/nowhere")  # a dangling link takes its name too
    assert copy(tree, into).landed == f"{into}/tree.3"
    assert sorted(p.name for p in into.iterdir()) == ["tree", "tree.1", "tree.2", "tree.3"]


def test_a_refused_tree_leaves_not_even_the_folders_it_made(tree: Path,
                                                             tmp_path: Path) -> None:
    (tree / "sub" / "etc").symlink_to("/etc")
    (tmp_path / "dst").mkdir()
    with pytest.raises(InputError, match=r"'tree/sub/etc' is a symbolic link to the absolute "
                                         r"path '/etc'; nothing was written to "):
        copy(tree, tmp_path / "dst" / "Incoming" / "src-box")
    assert everything(tmp_path / "dst") == []


def test_a_refused_tree_leaves_an_existing_folder_as_it_was(tree: Path,
                                                            tmp_path: Path) -> None:
    into = tmp_path / "dst"
    copy(tree, into)
    before = everything(into)
    os.mkfifo(tree / "pipe")
    with pytest.raises(InputError, match=r"'tree/pipe' is a fifo"):
        copy(tree, into)
    assert everything(into) == before


def test_a_link_in_the_landing_path_is_not_followed(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "Incoming").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match=r"cannot receive in .*/Incoming/box: "
                                         r".*/Incoming is a symbolic link \(not followed\)"):
        copy(tree, tmp_path / "Incoming" / "box")
    assert everything(tmp_path / "elsewhere") == []


def test_a_missing_source_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        copy(tmp_path / "nothing", tmp_path / "dst")
    assert str(exc.value) == (f"make: {tmp_path}/nothing does not exist; check the path "
                              "(make exec lists folders)")
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize(("path", "named"), [
    ("/root/tree", ("/root/tree", "tree")),
    ("/root/tree/", ("/root/tree", "tree")),
    ("/root//a/./b/../tree", ("/root/a/tree", "tree")),
])
def test_the_path_sent_is_the_plain_one(path: str, named: tuple[str, str]) -> None:
    assert transfer._named(path) == named


@pytest.mark.parametrize("path", ["/", "//", "/root/..", "root/tree", ""])
def test_a_path_that_names_no_file_of_its_own_is_refused(path: str) -> None:
    with pytest.raises(InputError):
        transfer._named(path)
