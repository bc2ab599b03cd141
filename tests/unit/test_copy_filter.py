"""The tar filter of make copy (anklume/ops/tarfilter.py) on crafted streams: what passes
comes out clean (modes kept, owners root, sizes and sha256 right), what must not pass
stops the copy before the DONE marker, so the receiving side keeps nothing."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from anklume.ops.tarfilter import DONE, PAYLOAD, File, Filter, Refused

pytestmark = pytest.mark.unit


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
           link: str = "", uid: int = 1000) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid = kind, mode, link, uid, uid
    info.uname = info.gname = "alice"
    info.mtime = 1_700_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def stream(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw.seek(0)
    return raw


def run(root: str, *members: tuple[tarfile.TarInfo, bytes]) -> tuple[list[File], bytes]:
    sink = io.BytesIO()
    f = Filter(sink, root)
    files = f.copy(stream(*members))
    f.finish()
    return files, sink.getvalue()


def refused(root: str, *members: tuple[tarfile.TarInfo, bytes]) -> tuple[str, bytes]:
    sink = io.BytesIO()
    f = Filter(sink, root)
    with pytest.raises(Refused) as exc:
        f.copy(stream(*members))
    return str(exc.value), sink.getvalue()


TREE = member("t", tarfile.DIRTYPE, mode=0o750)


def test_a_good_tree_keeps_modes_and_content_and_drops_owners() -> None:
    script = b"#!/bin/sh\necho hi\n"
    files, out = run("t", TREE, member("t/run.sh", data=script, mode=0o4755),
                     member("t/sub", tarfile.DIRTYPE, mode=0o700),
                     member("t/sub/secret", data=b"x" * 70000, mode=0o600),
                     member("t/sub/up", tarfile.SYMTYPE, link="../run.sh"),
                     member("t/sub/same", tarfile.LNKTYPE, link="t/sub/secret"))
    assert files == [
        File("t/run.sh", len(script), hashlib.sha256(script).hexdigest()),
        File("t/sub/secret", 70000, hashlib.sha256(b"x" * 70000).hexdigest()),
        File("t/sub/same", 70000, hashlib.sha256(b"x" * 70000).hexdigest())]
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        got = {m.name: m for m in tar.getmembers()}
        assert list(got) == [PAYLOAD, f"{PAYLOAD}/run.sh", f"{PAYLOAD}/sub",
                             f"{PAYLOAD}/sub/secret", f"{PAYLOAD}/sub/up",
                             f"{PAYLOAD}/sub/same", DONE]
        modes = {n: m.mode for n, m in got.items()}
        # The set-user-ID bit is the one mode bit that never crosses.
        assert modes[PAYLOAD] == 0o750 and modes[f"{PAYLOAD}/run.sh"] == 0o755
        assert modes[f"{PAYLOAD}/sub/secret"] == 0o600
        assert {(m.uid, m.gid, m.uname, m.gname) for m in got.values()} == {
            (0, 0, "root", "root")}
        assert got[f"{PAYLOAD}/sub/up"].linkname == "../run.sh"
        assert got[f"{PAYLOAD}/sub/same"].linkname == f"{PAYLOAD}/sub/secret"
        assert tar.extractfile(f"{PAYLOAD}/run.sh").read() == script  # type: ignore[union-attr]
        assert got[f"{PAYLOAD}/run.sh"].mtime == 1_700_000_000


def test_a_single_file_is_its_own_root() -> None:
    files, out = run("notes.txt", member("notes.txt", data=b"hello", mode=0o640))
    assert files == [File("notes.txt", 5, hashlib.sha256(b"hello").hexdigest())]
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getnames() == [PAYLOAD, DONE]


@pytest.mark.parametrize(("bad", "why"), [
    (member("t/etc", tarfile.SYMTYPE, link="/etc"), "absolute path '/etc'"),
    (member("t/up", tarfile.SYMTYPE, link="../x"), "out of the copied tree"),
    (member("t/up", tarfile.SYMTYPE, link="../../../etc/passwd"), "out of the copied tree"),
    # Lexically inside, but a link in the middle could climb anywhere.
    (member("t/mid", tarfile.SYMTYPE, link="a/../b"), "out of the copied tree"),
    (member("t/../x", data=b"x"), "'..', '.' or empty component"),
    (member("../x", data=b"x"), "'..', '.' or empty component"),
    (member("/etc/cron.d/x", data=b"x"), "is an absolute name"),
    (member("t/tty", tarfile.CHRTYPE), "is a character device"),
    (member("t/disk", tarfile.BLKTYPE), "is a block device"),
    (member("t/pipe", tarfile.FIFOTYPE), "is a fifo"),
    (member("t/shadow", tarfile.LNKTYPE, link="etc/shadow"), "hard link to 'etc/shadow'"),
    (member("other/x", data=b"x"), "lies outside the copied 't'"),
    (member("t/deep/x", data=b"x"), "does not come after its folder"),
])
def test_a_bad_member_stops_the_copy_before_the_marker(bad: tuple[tarfile.TarInfo, bytes],
                                                       why: str) -> None:
    what, out = refused("t", TREE, member("t/fine", data=b"ok"), bad,
                        member("t/after", data=b"never"))
    assert why in what
    assert DONE.encode() not in out and b"never" not in out


def test_nothing_is_written_through_a_link_of_the_tree() -> None:
    what, _ = refused("t", TREE, member("t/in", tarfile.SYMTYPE, link="sub"),
                      member("t/in/x", data=b"x"))
    assert "does not come after its folder (or its folder is a link)" in what


def test_a_member_seen_twice_is_refused() -> None:
    what, _ = refused("t", TREE, member("t/a", data=b"1"),
                      member("t/a", tarfile.SYMTYPE, link="/etc/passwd"))
    assert "'/etc/passwd'" in what or "appears twice" in what


def test_the_root_as_a_link_is_refused() -> None:
    what, _ = refused("t", member("t", tarfile.SYMTYPE, link="/etc"))
    assert "is itself a symbolic link" in what


def test_links_that_stay_inside_pass() -> None:
    files, out = run("t", TREE, member("t/a", tarfile.DIRTYPE),
                     member("t/a/b", tarfile.DIRTYPE),
                     member("t/a/b/l", tarfile.SYMTYPE, link="../../x"),
                     member("t/a/here", tarfile.SYMTYPE, link="./b/"),
                     member("t/dangling", tarfile.SYMTYPE, link="nothing"))
    assert files == []
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getmember(f"{PAYLOAD}/a/b/l").linkname == "../../x"


def test_an_empty_stream_is_no_tar() -> None:
    with pytest.raises(tarfile.ReadError):
        Filter(io.BytesIO(), "t").copy(io.BytesIO(b""))
