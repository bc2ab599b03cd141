"""`make doctor`: the parts that need no daemon.

The report's lines and summary, the JSON keys, the subordinate-id files (read from a path),
the disk threshold, the plan's summary line, the refusals, the tree check on a real
rendered tree, and FIX=1's loop (repair, check again, mark fixed) with real commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import doctor
from anklume.ops import doctor_checks as machine
from anklume.ops import doctor_tree as declared
from anklume.ops import tree as trees
from anklume.ops.doctor_host import Finding, Host, Repair
from tests.incus_helpers import REPO
from tests.unit.gen_support import VALID, sync, write_infra

pytestmark = pytest.mark.unit

KEYS = ["check", "ok", "what", "why", "fix", "fixed"]


def host(tmp: Path, euid: int = 0, rendered: bool = False) -> Host:
    tree = trees.load(tmp) if rendered else None
    return Host(root=tmp, env=dict(os.environ), python=sys.executable, tree=tree, euid=euid)


# --- the report --------------------------------------------------------------------------
def test_a_healthy_check_is_one_short_line() -> None:
    out = doctor.lines(Finding("lxcfs", True, "lxcfs serves /var/lib/incus-lxcfs"))
    assert out == ["ok    lxcfs    lxcfs serves /var/lib/incus-lxcfs"]


def test_a_finding_says_what_why_and_the_command_that_fixes_it() -> None:
    f = Finding("nftables", False, "table inet anklume is not loaded", why="traffic flows",
                fix="make nftables-deploy NFT_FILE=nftables/anklume.nft",
                repair=Repair(("bash", "scripts/deploy-nftables.sh"), "loaded"))
    out = doctor.lines(f)
    assert out[0] == "FAIL  nftables table inet anklume is not loaded"
    assert out[1].split() == ["why:", "traffic", "flows"]
    assert out[2].strip() == ("fix: make nftables-deploy NFT_FILE=nftables/anklume.nft   "
                              "(FIX=1 does it)")
    assert out[1].index("why") == out[0].index("table inet")  # under the text, not the label


def test_a_fix_that_is_not_safe_unasked_does_not_promise_fix_1() -> None:
    out = doctor.lines(Finding("subids", False, "x", why="y", fix="usermod ..."))
    assert out[2].strip() == "fix: usermod ..."


def test_a_skipped_check_is_marked_and_has_no_fix_lines() -> None:
    out = doctor.lines(Finding("drift", False, "not checked: Incus does not answer",
                               skipped=True))
    assert out == ["--    drift    not checked: Incus does not answer"]


def test_summary_of_a_healthy_host() -> None:
    text = doctor.summary([Finding("root", True, "a"), Finding("disk", True, "b")], 1.25)
    assert text == "doctor: healthy (2 lines, 1.2 s)"


def test_summary_counts_findings_skips_and_what_fix_1_repairs() -> None:
    found = [Finding("root", True, "a"),
             Finding("lxcfs", False, "down", repair=Repair(("x",), "y")),
             Finding("images", False, "missing a"), Finding("images", False, "missing b"),
             Finding("drift", False, "not checked", skipped=True)]
    assert doctor.summary(found, 2.0) == ("doctor: 3 findings (lxcfs, images), 1 check not "
                                          "run; FIX=1 repairs lxcfs (2.0 s)")


def test_summary_after_fix_1_names_what_it_repaired() -> None:
    found = [Finding("lxcfs", True, "serves", fixed=True), Finding("root", True, "a")]
    assert doctor.summary(found, 3.0) == "doctor: healthy (2 lines, 3.0 s); FIX=1 repaired lxcfs"


def test_json_is_a_list_with_stable_keys_only() -> None:
    found = [Finding("root", True, "running as root"),
             Finding("lxcfs", False, "down", "why", "make host", repair=Repair(("x",), "y"),
                     skipped=False, fixed=False)]
    data = json.loads(doctor.as_json(found))
    assert [list(d) for d in data] == [KEYS, KEYS]
    assert data[1] == {"check": "lxcfs", "ok": False, "what": "down", "why": "why",
                       "fix": "make host", "fixed": False}
    assert data[0]["ok"] is True


# --- subordinate ids ---------------------------------------------------------------------
def test_subids_are_read_for_root_by_name_or_uid(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\nroot:1000000:1000000000\n# comment\nbroken\n0:5:70000\n")
    assert machine.parse_subids(f) == [(1000000, 1000000000), (5, 70000)]
    assert machine.parse_subids(f, "alice") == [(100000, 65536)]
    assert machine.parse_subids(tmp_path / "absent") is None


def test_a_missing_or_narrow_range_is_a_problem(tmp_path: Path) -> None:
    p = tmp_path / "subuid"
    assert "no range" in machine.subid_problem(p, [])
    assert "at most 65535 ids" in machine.subid_problem(p, [(100000, 65535), (1, 10)])
    assert machine.subid_problem(p, [(100000, 65536)]) == ""


def test_subids_check_reads_both_files(tmp_path: Path) -> None:
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("root:1000000:1000000000\n")
    gid.write_text("alice:100000:65536\n")
    found = machine.subids(host(tmp_path), (uid, gid))
    assert [(f.ok, f.check) for f in found] == [(False, "subids")]
    assert str(gid) in found[0].what and str(uid) not in found[0].what
    assert "usermod" in found[0].fix and found[0].repair is None
    gid.write_text("root:1000000:1000000000\n")
    assert machine.subids(host(tmp_path), (uid, gid))[0].ok
    gid.unlink()  # Incus uses its default map when either file is absent
    found = machine.subids(host(tmp_path), (uid, gid))
    assert found[0].ok and "default range" in found[0].what


# --- disk, mounts, plan ------------------------------------------------------------------
def test_disk_threshold() -> None:
    assert machine.low(machine.MIN_FREE - 1)
    assert not machine.low(machine.MIN_FREE)
    assert machine.low(10, minimum=11) and not machine.low(11, minimum=11)
    assert machine.gib(5 * machine.GIB + machine.GIB // 2) == "5.5 GiB"


def test_mounted_reads_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("lxcfs /var/lib/incus-lxcfs fuse.lxcfs rw 0 0\n/dev/vda / ext4 rw 0 0\n")
    assert machine.mounted("/var/lib/incus-lxcfs", mounts)
    assert not machine.mounted("/var/lib/lxcfs", mounts)
    assert not machine.mounted("/", tmp_path / "absent")


def test_a_plan_with_nothing_to_do_is_healthy() -> None:
    line = "plan: 0 to create, 0 to change, 0 to remove, 2 orphans (PRUNE=1 removes)"
    found = declared.judge_plan(f"PLAY RECAP\n{line}\n", 0)
    assert [(f.ok, f.what) for f in found] == [(True, line)]


@pytest.mark.parametrize("line", [
    "plan: 1 to create, 0 to change, 0 to remove, 0 orphans (PRUNE=1 removes)",
    "plan: 0 to create, 2 to change, 0 to remove, 0 orphans (PRUNE=1 removes)",
    "plan: 0 to create, 0 to change, 0 to remove, 0 orphans (PRUNE=1 removes), 1 conflicts "
    "(objects that are not ours: stopped before any change, ADR-021)",
])
def test_drift_is_one_line_from_the_plan(line: str) -> None:
    found = declared.judge_plan(f"plan: 9 to create, 0 to change, 0 to remove, 0 orphans\n"
                                f"{line}\n", 2)
    assert [(f.ok, f.what, f.fix.split()[:2]) for f in found] == [(False, line,
                                                                   ["make", "apply"])]


def test_a_plan_that_stopped_is_a_finding_with_its_error() -> None:
    found = declared.judge_plan("TASK [x]\nfatal: [localhost]: FAILED! => boom\nrecap\n", 2)
    assert not found[0].ok and "exit 2" in found[0].what and "boom" in found[0].what


def test_images_of_this_incus_and_of_image_servers() -> None:
    assert declared.split_image("anklume/debian-12") == ("", "anklume/debian-12")
    assert declared.split_image("local:x/y") == ("", "x/y")
    assert declared.split_image("images:debian/12") == ("images", "debian/12")


# --- refusals ----------------------------------------------------------------------------
def test_fix_1_as_another_user_is_refused_before_anything() -> None:
    refused = doctor.refusal(True, 1000)
    assert isinstance(refused, InputError) and refused.exit_code == 2
    assert len(refused.problems) == 1 and "sudo make doctor FIX=1" in refused.problems[0].fix
    assert doctor.refusal(True, 0) is None
    assert doctor.refusal(False, 1000) is None


@pytest.mark.parametrize(("typed", "words"), [
    ("FIX=maybe", "FIX=maybe is not a yes or a no"),
    ("JSON=2", "JSON=2 is not a yes or a no"),
    ("FORCE=1", "FORCE= is not read here"),
])
def test_make_doctor_refuses_a_variable_it_does_not_read(typed: str, words: str) -> None:
    env = {**os.environ, "MAKEFLAGS": f" -- {typed}", "MAKELEVEL": "1"}
    proc = subprocess.run([sys.executable, "scripts/ops.py", "doctor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and words in proc.stderr


# --- the tree ----------------------------------------------------------------------------
def test_no_tree_is_a_finding_and_the_tree_checks_are_skipped(tmp_path: Path) -> None:
    h = host(tmp_path)
    h.tree_problem = "group_vars/all.yml is missing"
    assert [(f.ok, f.fix) for f in machine.tree(h)] == [(False, "make sync")]
    for check in (declared.images, declared.nftables, declared.drift):
        assert all(f.skipped for f in check(h))


def test_tree_behind_infra_yml_is_found_without_writing(tmp_path: Path) -> None:
    assert sync(tmp_path, VALID).code == 0
    assert machine.tree(host(tmp_path, rendered=True))[0].ok
    write_infra(tmp_path, VALID.replace('"Administration"', '"Admin, renamed"'))
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.yml"))
    found = machine.tree(host(tmp_path, rendered=True))
    assert [(f.ok, f.fix) for f in found] == [(False, "make sync")]
    assert "sync would write 1 files (group_vars/all.yml)" in found[0].what
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.yml")) == before


def test_an_infra_file_that_does_not_validate_is_one_finding(tmp_path: Path) -> None:
    assert sync(tmp_path, VALID).code == 0
    write_infra(tmp_path, VALID.replace("subnet_id: 2", "subnet_id: 0"))
    found = machine.tree(host(tmp_path, rendered=True))
    assert len(found) == 1 and not found[0].ok and "does not render" in found[0].what


# --- FIX=1's loop ------------------------------------------------------------------------
def test_fix_1_runs_each_repair_once_checks_again_and_marks_fixed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "repaired"
    calls: list[str] = []

    def flaky(h: Host) -> list[Finding]:
        calls.append("flaky")
        if marker.exists():
            return [Finding("flaky", True, "repaired state")]
        rep = Repair(("touch", str(marker)), "touched the marker")
        return [Finding("flaky", False, "broken", fix="touch it", repair=rep),
                Finding("flaky", False, "broken twice", fix="touch it", repair=rep)]

    def steady(h: Host) -> list[Finding]:
        calls.append("steady")
        return [Finding("steady", False, "needs a person", fix="do it by hand")]

    def fine(h: Host) -> list[Finding]:
        calls.append("fine")
        return [Finding("fine", True, "fine")]

    monkeypatch.setattr(doctor, "CHECKS", (("flaky", flaky), ("steady", steady),
                                           ("fine", fine)))
    monkeypatch.setenv("ANKLUME_LOCK_DIR", str(tmp_path / "lock"))
    h = host(tmp_path)
    results = doctor.examine(h)
    assert len(doctor.repairs(results)) == 1  # the same command for two findings
    log = tmp_path / "log"
    with log.open("w") as out:
        final = doctor.repair(h, results, out, to_stderr=False)
    assert calls == ["flaky", "steady", "fine", "flaky"]  # only the repaired one again
    assert [(f.check, f.ok, f.fixed) for fs in final.values() for f in fs] == [
        ("flaky", True, True), ("steady", False, False), ("fine", True, False)]
    text = log.read_text()
    assert f"touch {marker}" in text and "flaky: touched the marker" in text


def test_a_check_that_breaks_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    def broken(h: Host) -> list[Finding]:
        raise KeyError("server_version")

    monkeypatch.setattr(doctor, "CHECKS", (("broken", broken),
                                           ("root", machine.root)))
    found = doctor.examine(host(tmp_path))
    assert not found["broken"][0].ok and "KeyError" in found["broken"][0].what
    assert found["root"][0].ok
