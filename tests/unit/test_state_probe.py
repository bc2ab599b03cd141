"""ADR-058: what state_probe reads, on this machine's own files (no daemon, no instance).

The checks must say "drift" exactly when the module that converges the state would change
something (lineinfile, file state=link, copy, apt state=present, locale_gen), or a role
would skip a repair. The end-to-end repair runs in tests/integration/test_provision.py.
"""

from __future__ import annotations

import hashlib
import os
import pwd
from pathlib import Path

import pytest
from ansible_collections.anklume.incus.plugins.module_utils import state_probe as sp

pytestmark = pytest.mark.unit

ME = pwd.getpwuid(os.getuid()).pw_name


def params(**given: object) -> dict[str, object]:
    base: dict[str, object] = {"packages": [], "locales": [], "lines": [], "links": [],
                               "files": [], "directories": [], "commands": [], "force": False}
    base.update(given)
    return base


def line(path: Path, regexp: str, text: str, **attrs: str) -> dict[str, str]:
    return {"path": str(path), "regexp": regexp, "line": text, **attrs}


def test_nothing_declared_is_no_drift() -> None:
    assert sp.probe(params()) == []


def test_force_always_drifts() -> None:
    assert sp.probe(params(force=True)) == ["a full run was asked for"]


@pytest.mark.parametrize(("content", "drifted"), [
    ("# comment\nLANG=en_US.UTF-8\n", False),
    ("LANG=C\n", True),
    # lineinfile replaces the LAST matching line: an earlier good one does not count.
    ("LANG=en_US.UTF-8\nLANG=C\n", True),
    # No line matches the regexp: lineinfile appends unless the line is already there.
    ("# only a comment\n", True),
])
def test_lines_follow_lineinfile(tmp_path: Path, content: str, drifted: bool) -> None:
    f = tmp_path / "locale"
    f.write_text(content)
    drift = sp.probe(params(lines=[line(f, "^LANG=", "LANG=en_US.UTF-8")]))
    assert bool(drift) is drifted, drift


def test_a_missing_file_and_wrong_attributes_drift(tmp_path: Path) -> None:
    f = tmp_path / "timezone"
    assert sp.probe(params(lines=[line(f, "^", "Etc/UTC")])) == [f"{f} is missing"]
    f.write_text("Etc/UTC\n")
    f.chmod(0o600)
    assert sp.probe(params(lines=[line(f, "^", "Etc/UTC", mode="0644", owner=ME)])) == [
        f"{f}: mode is 0600, not 0644"]
    assert sp.probe(params(lines=[line(f, "^", "Etc/UTC", owner="no-such-user-x")])) == [
        f"{f}: owner is not no-such-user-x"]


def test_links_must_point_exactly(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    want = {"path": str(link), "src": "/usr/share/zoneinfo/Etc/UTC"}
    assert sp.probe(params(links=[want])) == [f"{link} is not a link"]
    link.symlink_to("/usr/share/zoneinfo/Europe/Paris")
    assert sp.probe(params(links=[want])) == [
        f"{link} points at /usr/share/zoneinfo/Europe/Paris, not /usr/share/zoneinfo/Etc/UTC"]
    link.unlink()
    link.symlink_to(want["src"])
    assert sp.probe(params(links=[want])) == []


def test_files_by_checksum_and_kind(tmp_path: Path) -> None:
    f = tmp_path / "incus"
    f.write_bytes(b"client")
    good = hashlib.sha256(b"client").hexdigest()
    assert sp.probe(params(files=[{"path": str(f), "sha256": good}])) == []
    f.write_bytes(b"client!")
    assert sp.probe(params(files=[{"path": str(f), "sha256": good}])) == [f"{f}: content differs"]
    assert sp.probe(params(files=[{"path": str(tmp_path)}])) == [
        f"{tmp_path} is not a regular file"]
    assert sp.probe(params(directories=[{"path": str(f)}])) == [f"{f} is not a directory"]
    (tmp_path / "d").mkdir(mode=0o700)
    assert sp.probe(params(directories=[{"path": str(tmp_path / "d"), "mode": "0711"}])) == [
        f"{tmp_path / 'd'}: mode is 0700, not 0711"]


def test_commands_compare_their_stripped_output() -> None:
    assert sp.probe(params(commands=[{"argv": ["echo", " 2.19.14 "], "stdout": "2.19.14"}])) == []
    drift = sp.probe(params(commands=[{"argv": ["echo", "2.18.0"], "stdout": "2.19.14"}]))
    assert drift == ["echo 2.18.0: '2.18.0', not '2.19.14'"]
    drift = sp.probe(params(commands=[{"argv": ["/nonexistent/python"], "stdout": "x"}]))
    assert drift == ["/nonexistent/python: failed, not 'x'"]


def test_the_commands_of_every_probe_run_side_by_side(tmp_path: Path) -> None:
    """probe_all starts every probe's commands before it reads any of them (ADR-078): the
    first command here waits (2 s at most) for a file the second one writes, so read one
    after the other the first would fail. Each answer still goes to its own probe."""
    flag = tmp_path / "flag"
    waits = {"argv": ["sh", "-c", f"for i in $(seq 40); do [ -e {flag} ] && echo seen && "
                                  "exit 0; sleep 0.05; done; exit 1"], "stdout": "seen"}
    writes = {"argv": ["sh", "-c", f"touch {flag}; echo wrote"], "stdout": "wrote"}
    wrong = {"argv": ["echo", "other"], "stdout": "expected"}
    assert sp.probe_all([params(commands=[waits]), params(commands=[wrong, writes])]) == [
        [], ["echo other: 'other', not 'expected'"]]


def test_packages_read_dpkg_status() -> None:
    """dpkg itself is installed on any Debian controller; the other name exists nowhere."""
    assert sp.probe(params(packages=["dpkg"])) == []
    assert sp.probe(params(packages=["dpkg", "anklume-no-such-package"])) == [
        "package anklume-no-such-package is not installed"]


def test_locales_ignore_case_and_dashes() -> None:
    assert sp.locale_drift([]) == []
    assert sp.locale_drift(["xx_NO.UTF-8"]) == ["locale xx_NO.UTF-8 is not generated"]
    assert sp._norm_locale("en_US.UTF-8") == sp._norm_locale("en_US.utf8")
