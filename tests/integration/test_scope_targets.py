"""Every daily target acts on exactly the instances DOMAIN= / I= / LIMIT= name, a refused
command touches nothing, and two runs on one Incus take turns (ADR-071).

One lab (owner t27scope, t27s* and the template t27c, 10.127.x.0/24, table anklumet27s) is
applied once for the module; each test reads Incus before and after and leaves the lab
whole again. Names and subnets: docs/testing.md.

Own lab: it needs plain domains and a domain template (t27c) side by side to test DOMAIN=, I=
and LIMIT=; its tests destroy and re-create parts of it, snapshot and restore them, and run two
applies at once and kill one, which would change any lab another module reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree
from tests.integration.reconcile_lab import all_instances, cleanup, incus_query

OWNER = "t27scope"
# The lab's projects start with one of these (other t27 tests own other prefixes).
PREFIXES = ("t27s", "t27c")
BASE = "10.127"
TABLE = "anklumet27s"
LOCK = Path("/run/lock/anklume") / f"local-{OWNER}.lock"

INFRA: dict[str, Any] = {
    "project_name": OWNER,
    "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
               "admin_domain": "t27sa"},
    "domains": {
        "t27sa": {"subnet_id": 1, "ephemeral": False,
                  "machines": {"t27sa-keep": {"ip": f"{BASE}.1.10"}}},
        "t27sb": {"subnet_id": 2, "ephemeral": True,
                  "machines": {"t27sb-one": {"ip": f"{BASE}.2.10"},
                               "t27sb-two": {"ip": f"{BASE}.2.11"}}},
    },
    "domain_templates": {
        "t27c": {"count": 2, "first_subnet_id": 11, "ephemeral": True,
                 "machines": {"srv": {"ip_host": 10}}},
    },
}
EVERY = {"t27sa-keep", "t27sb-one", "t27sb-two", "t27c01-srv", "t27c02-srv"}


class ScopeLab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)
        (self.root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
        self.make("sync")
        allvars = self.root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {TABLE}\n")

    def make(self, *args: str, rc: int = 0, timeout: float = 600) -> str:
        code, out = lab_make(self.root, *args, timeout=timeout)
        assert code == rc, f"make {' '.join(args)}: exit {code}, wanted {rc}:\n{out[-4000:]}"
        return out

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
        return subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                                cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, start_new_session=True)

    @staticmethod
    def state() -> dict[str, tuple[str, str]]:
        """Each of our instances: (created_at, status)."""
        return {name: (inst["created_at"], inst["status"])
                for (project, name), inst in all_instances().items()
                if project.startswith(PREFIXES)}

    @staticmethod
    def snapshots() -> dict[str, set[str]]:
        out = {}
        for (project, name), _ in all_instances().items():
            if project.startswith(PREFIXES):
                snaps = incus_query(f"/1.0/instances/{name}/snapshots?project={project}") or []
                out[name] = {s.split("?")[0].rsplit("/", 1)[-1] for s in snaps}
        return out

    @staticmethod
    def project_of(name: str) -> str:
        return name.split("-")[0]

    def marker(self, name: str) -> bool:
        proc = subprocess.run(["incus", "exec", "--project", self.project_of(name), name, "--",
                               "test", "-e", "/root/t27-marker"], check=False)
        return proc.returncode == 0

    def mark(self, names: set[str]) -> None:
        for name in names:
            subprocess.run(["incus", "exec", "--project", self.project_of(name), name, "--",
                            "touch", "/root/t27-marker"], check=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScopeLab]:
    for prefix in PREFIXES:
        cleanup(prefix, TABLE)
    lab = ScopeLab(tmp_path_factory.mktemp("t27scope"))
    lab.make("apply", "TAGS=infra")
    yield lab
    for prefix in PREFIXES:
        cleanup(prefix, TABLE)


def _whole(lab: ScopeLab) -> dict[str, tuple[str, str]]:
    state = lab.state()
    assert set(state) == EVERY and {s for _, s in state.values()} == {"Running"}, state
    return state


def test_destroy_with_I_deletes_that_instance_and_nothing_else(lab: ScopeLab) -> None:
    before = _whole(lab)
    out = lab.make("destroy", "I=t27sb-one")
    after = lab.state()
    assert set(after) == EVERY - {"t27sb-one"}
    assert all(after[n] == before[n] for n in after)
    # Its domain's project and bridge stay: the other instance there still needs them.
    assert incus_query("/1.0/projects/t27sb")["name"] == "t27sb"
    assert incus_query("/1.0/networks/net-t27sb")["name"] == "net-t27sb"
    assert "t27sb-two" not in out.split("PLAY RECAP")[0].split("Destroy the instances")[-1]
    lab.make("apply", "I=t27sb-one")
    again = lab.state()
    assert set(again) == EVERY
    assert all(again[n] == before[n] for n in EVERY - {"t27sb-one"})


def test_destroy_and_apply_of_one_class_domain_leave_the_rest(lab: ScopeLab) -> None:
    before = _whole(lab)
    lab.make("destroy", "DOMAIN=t27c")
    after = lab.state()
    assert set(after) == EVERY - {"t27c01-srv", "t27c02-srv"}
    assert all(after[n] == before[n] for n in after)
    projects = {p["name"] for p in incus_query("/1.0/projects?recursion=1")}
    assert not {"t27c01", "t27c02"} & projects
    out = lab.make("plan", "I=t27c02-srv")
    assert "plan: " in out and "t27c01-srv" not in out.split("PLAY RECAP")[0]
    lab.make("apply", "DOMAIN=t27c01")
    assert set(lab.state()) == EVERY - {"t27c02-srv"}
    lab.make("apply", "LIMIT=t27c02")
    again = lab.state()
    assert set(again) == EVERY
    assert all(again[n] == before[n] for n in EVERY - {"t27c01-srv", "t27c02-srv"})


def test_snapshot_restore_and_delete_act_on_their_scope_only(lab: ScopeLab) -> None:
    _whole(lab)
    lab.make("snapshot", "NAME=s27", "DOMAIN=t27s*")
    snaps = lab.snapshots()
    assert {n for n, s in snaps.items() if "s27" in s} == {"t27sa-keep", "t27sb-one",
                                                           "t27sb-two"}
    lab.make("snapshot", "NAME=s27", "I=t27c01-srv,t27c02-srv")
    assert all("s27" in s for s in lab.snapshots().values())

    lab.mark(EVERY)
    lab.make("restore", "NAME=s27", "I=t27sb-one")
    assert {n for n in EVERY if not lab.marker(n)} == {"t27sb-one"}
    lab.make("restore", "NAME=s27", "LIMIT=t27c")
    assert {n for n in EVERY if not lab.marker(n)} == {"t27sb-one", "t27c01-srv", "t27c02-srv"}
    lab.make("restore", "NAME=s27", "DOMAIN=t27sa")
    assert {n for n in EVERY if lab.marker(n)} == {"t27sb-two"}

    lab.make("snapshot-delete", "NAME=s27", "I=t27sb-two")
    assert {n for n, s in lab.snapshots().items() if "s27" in s} == EVERY - {"t27sb-two"}
    out = lab.make("snapshot-list", "DOMAIN=t27sb")
    assert "t27sb-one" in out and "t27sa-keep" not in out
    lab.make("snapshot-delete", "NAME=s27", "I=t27sa-keep,t27sb-one,t27c01-srv,t27c02-srv")
    assert not any(lab.snapshots().values())


def test_status_shows_its_scope(lab: ScopeLab) -> None:
    out = lab.make("status", "DOMAIN=t27c")
    rows = [ln.split()[1] for ln in out.splitlines() if ln.startswith("t27c0")]
    assert rows == ["t27c01-srv", "t27c02-srv"]
    out = lab.make("status", "I=t27sa-keep")
    assert [ln.split()[1] for ln in out.splitlines()[1:] if ln.strip()] == ["t27sa-keep"]


REFUSED = [
    (("destroy", "I=t27sb-one", "DOMAIN=t27sb"), "DOMAIN= and I= given together"),
    (("destroy", "I=t27sb-on"), "I=t27sb-on is no declared instance; did you mean t27sb-one?"),
    (("destroy", "DOMAIN=t27x*"), "unknown domain DOMAIN=t27x*: it matches no domain or template"),
    (("destroy", "FORCE=maybe", "I=t27sa-keep"), "FORCE=maybe is not a yes or a no"),
    (("restore", "NAME=s27", "I=nope"), "I=nope is no declared instance"),
    (("restore", "I=t27sb-one"), "NAME= is required"),
    (("apply", "NAME=x"), "NAME= is not read here"),
    (("apply", "PRUNE=1", "DOMAIN=t27sb"), "PRUNE=1 cannot be combined with DOMAIN="),
    (("apply", "PRUNE=1", "LIMIT=t27sb"), "PRUNE=1 cannot be combined with LIMIT="),
    (("sync", "I=t27sb-one"), "I= is not read here"),
    (("sync-clean", "FORCE=true2"), "FORCE=true2 is not a yes or a no"),
    (("snapshot", "DOMAIN=t27sb", "LIMIT=t27sa"), "DOMAIN= and LIMIT= given together"),
    (("stop", "LIMIT=t27sb,t27sa-keep"), "mixes domains and instances"),
]


@pytest.mark.parametrize(("args", "line"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_refused_command_says_why_in_one_line_and_touches_nothing(
        lab: ScopeLab, args: tuple[str, ...], line: str) -> None:
    before, snaps = lab.state(), lab.snapshots()
    tree = {p: p.read_text() for p in (lab.root / "host_vars").iterdir()}
    start = time.monotonic()
    out = lab.make(*args, rc=2)
    assert time.monotonic() - start < 30, "a refusal runs no playbook (hang guard)"
    said = [ln for ln in out.splitlines() if not ln.startswith("make: ***")]
    assert len(said) == 1 and said[0].startswith(f"make {args[0]}: ") and line in said[0], out
    assert "Traceback" not in out
    assert lab.state() == before and lab.snapshots() == snaps
    assert {p: p.read_text() for p in (lab.root / "host_vars").iterdir()} == tree


def test_protected_instances_need_force(lab: ScopeLab) -> None:
    before = _whole(lab)
    lab.make("destroy", "I=t27sa-keep")
    assert lab.state() == before
    lab.make("destroy", "I=t27sa-keep", "FORCE=true")
    assert set(lab.state()) == EVERY - {"t27sa-keep"}
    lab.make("apply", "I=t27sa-keep")
    assert set(lab.state()) == EVERY


def _wait_for_holder(proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if LOCK.exists() and LOCK.read_text().strip():
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("the first apply never took the lock")


def test_two_applies_at_once_one_runs_the_other_stops_naming_it(lab: ScopeLab) -> None:
    first = lab.start("apply")
    _wait_for_holder(first)
    start = time.monotonic()
    code, out = lab_make(lab.root, "apply")
    took = time.monotonic() - start
    assert code == 2, out
    # A hang guard only: the figure (about 0.15 s) comes from make bench (bench_lock.py).
    assert took < 10, f"the second apply took {took:.2f} s to stop"
    holder = json.loads(LOCK.read_text())
    line = out.splitlines()[0]
    assert line.startswith("make apply: another run holds the lock on Incus 'local': "
                           f"'make apply' (PID {holder['pid']} on {socket.gethostname()}, "
                           "since "), line
    assert line.endswith("run again with WAIT=1 to wait for it"), line
    assert first.wait(timeout=600) == 0, first.communicate()[0]


def test_with_wait_both_succeed_one_after_the_other(lab: ScopeLab) -> None:
    first = lab.start("apply")
    _wait_for_holder(first)
    code, out = lab_make(lab.root, "apply", "WAIT=1", timeout=600)
    assert first.wait(timeout=600) == 0
    assert code == 0, out[-3000:]
    assert "lock: waiting for 'make apply' (PID " in out
    assert "changed=0" in out.split("PLAY RECAP")[-1]


def test_a_killed_holders_lock_is_taken_over(lab: ScopeLab) -> None:
    first = lab.start("apply")
    _wait_for_holder(first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    out = lab.make("apply")
    assert "lock: took over the lock left by 'make apply' (PID " in out
    assert set(lab.state()) == EVERY


def test_sync_dry_into_head_prints_one_line_and_succeeds(lab: ScopeLab) -> None:
    proc = subprocess.run(["bash", "-o", "pipefail", "-c",
                           "make --no-print-directory -o .venv/.installed sync-dry | head -1"],
                          cwd=lab.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert proc.stderr == ""
