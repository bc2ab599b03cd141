"""Domain resource limits (ADR-086) on the real Incus.

One lab (owner ``t28lim``, 10.132.x.0/24, nft table ``anklumet28l``): domain ``t28la``
with a budget (memory 256MiB, cpu 4, processes 1000) and one container ``t28la-one`` whose
share is 64MiB, 1 CPU, 50 processes, which allows disposables (each asks 512MiB: more than
is left); domain ``t28lb`` without limits and ``t28lb-one``.
Applied once and shared by the module's tests, in file order; cleaned before (leftovers of
an interrupted run) and after.

Which refusal a user really meets on apply: infra.yml cannot declare machines over the
budget (sync refuses them), so Incus's refusal comes from what infra.yml does not see: a
disposable or a hand-made instance holding part of the budget. The test makes one with
`incus create --project t28la` (as `make disp` would), then declares a machine that fits
infra.yml's sums but not what is left: the apply fails in one line naming the domain, the
limit and the fix. The other path met on apply is adding `limits:` to a domain whose
instances already run without their share: the project change is refused in one line,
and the documented order (`make apply TAGS=instances`, then `make apply`) goes through.

Own lab: its tests set project budgets, fill them with hand-made instances, OOM-kill and
fork-bomb inside its containers and add and remove a domain's limits: no other module's
lab may carry budgets or instances it does not declare.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_tree, recap
from tests.integration.reconcile_lab import all_instances, cleanup, incus_query

OWNER = "t28lim"
PREFIX = "t28l"
BASE = "10.132"
TABLE = "anklumet28l"
BUDGET = {"memory": "256MiB", "cpu": 4, "processes": 1000}
SHARE = {"limits.memory": "64MiB", "limits.memory.swap": "false", "limits.cpu": "1",
         "limits.processes": "50"}


def description() -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": ""},
        "domains": {
            "t28la": {"subnet_id": 1, "ephemeral": True, "limits": dict(BUDGET),
                      "disposables": True,
                      "machines": {"t28la-one": {"ip": f"{BASE}.1.10", "config": dict(SHARE)}}},
            "t28lb": {"subnet_id": 2, "ephemeral": True,
                      "machines": {"t28lb-one": {"ip": f"{BASE}.2.10"}}},
        },
    }


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)

    def make(self, *args: str, timeout: float = 600) -> tuple[int, str]:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=self.root,
            input="", capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"})
        return proc.returncode, proc.stdout + proc.stderr

    def ok(self, *args: str) -> str:
        rc, out = self.make(*args)
        assert rc == 0, f"make {' '.join(args)} exited {rc}:\n{out[-4000:]}"
        return out

    def write(self, doc: dict[str, Any]) -> None:
        (self.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        self.ok("sync")
        allvars = self.root / "group_vars" / "all.yml"
        text = allvars.read_text()
        if "incus_nftables_table" not in text:  # outside the managed section, kept by sync
            allvars.write_text(text + f"incus_nftables_table: {TABLE}\n")


def project_config(name: str) -> dict[str, str]:
    config: dict[str, str] = incus_query(f"/1.0/projects/{name}")["config"]
    return config


def status() -> dict[str, str]:
    return {name: str(i["status"]) for (project, name), i in all_instances().items()
            if project.startswith(PREFIX)}


def incus_exec(project: str, name: str, *cmd: str, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["incus", "exec", "--project", project, name, "--", *cmd],
                          capture_output=True, text=True, timeout=timeout, check=False)


def answers(project: str, name: str) -> bool:
    return incus_exec(project, name, "true", timeout=60).returncode == 0


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, TABLE)
    lab = Lab(tmp_path_factory.mktemp("t28lim"))
    try:
        lab.write(description())
        lab.ok("apply")
        assert status() == {"t28la-one": "Running", "t28lb-one": "Running"}
        yield lab
    finally:
        cleanup(PREFIX, TABLE)


def test_the_project_carries_the_budget_and_a_second_apply_changes_nothing(lab: Lab) -> None:
    config = project_config("t28la")
    assert {k: v for k, v in config.items() if k.startswith("limits.")} == {
        "limits.memory": "256MiB", "limits.cpu": "4", "limits.processes": "1000"}
    assert not any(k.startswith("limits.") for k in project_config("t28lb"))
    out = lab.ok("apply")
    assert recap(out) and set(recap(out).values()) == {0}, out[-3000:]


ALLOCATE = "x = bytearray(b'\\x01') * (128 << 20); print('survived')"


def test_a_disposable_beyond_the_budget_is_refused_in_one_line(lab: Lab) -> None:
    """A disposable takes its own share (512MiB) in a limited domain: with 192MiB left,
    Incus refuses it and make disp says so in one line, leaving nothing behind. Only memory
    is short (Incus names the first key over, in no set order, when several are)."""
    before = status()
    rc, out = lab.make("disp", "DOMAIN=t28la", "CMD=true")
    lines = [line for line in out.splitlines()
             if line.startswith("make disp:") or line.startswith("disp:")]
    assert rc == 2, out
    assert lines[-1].startswith("make disp: domain t28la: an instance does not fit its "
                                "memory budget (memory: 256MiB"), out
    assert "fix: " in lines[-1]
    assert status() == before


def test_the_plan_shows_a_budget_change_like_any_other(lab: Lab) -> None:
    doc = description()
    raised = copy.deepcopy(doc)
    raised["domains"]["t28la"]["limits"]["memory"] = "320MiB"
    lab.write(raised)
    try:
        out = lab.ok("plan")
        assert "plan: 0 to create, 1 to change, 0 to remove" in out, out[-3000:]
        assert "limits.memory" in out and "320MiB" in out, out[-3000:]
        assert project_config("t28la")["limits.memory"] == "256MiB"  # a plan changes nothing
    finally:
        lab.write(doc)


def test_a_process_past_the_machines_memory_is_killed_inside(lab: Lab) -> None:
    # 128MiB written (so really allocated) in a container whose share is 64MiB, no swap:
    # SIGKILLed by the OOM killer of its cgroup (137 = 128 + 9).
    proc = incus_exec("t28la", "t28la-one", "python3", "-c", ALLOCATE)
    assert proc.returncode == 137, (proc.returncode, proc.stdout, proc.stderr)
    assert "survived" not in proc.stdout
    # The same allocation in the unlimited domain goes through: the limit is the share's.
    free = incus_exec("t28lb", "t28lb-one", "python3", "-c", ALLOCATE)
    assert (free.returncode, free.stdout.strip()) == (0, "survived"), free.stderr
    assert status() == {"t28la-one": "Running", "t28lb-one": "Running"}
    assert answers("t28la", "t28la-one") and answers("t28lb", "t28lb-one")


FORKS = """
import errno, os, time
pids, failed = [], None
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as exc:
        failed = exc.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(len(pids), errno.errorcode.get(failed, failed))
"""


def test_a_fork_loop_is_stopped_by_the_processes_share(lab: Lab) -> None:
    proc = incus_exec("t28la", "t28la-one", "timeout", "60", "python3", "-c", FORKS)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    started, failure = proc.stdout.split()
    assert failure == "EAGAIN" and int(started) < 50, proc.stdout
    # The same loop in the unlimited domain forks all 200: the limit is the share's.
    free = incus_exec("t28lb", "t28lb-one", "timeout", "60", "python3", "-c", FORKS)
    assert free.stdout.split() == ["200", "None"], (free.stdout, free.stderr)
    assert status() == {"t28la-one": "Running", "t28lb-one": "Running"}
    assert answers("t28la", "t28la-one")


def test_an_instance_beyond_the_budget_is_refused_by_incus_and_by_the_apply(lab: Lab) -> None:
    image = "anklume/debian-12"
    over = subprocess.run(
        ["incus", "create", "--project", "t28la", image, "t28la-hand", "-c",
         "limits.memory=256MiB", "-c", "limits.cpu=1", "-c", "limits.processes=10"],
        capture_output=True, text=True, timeout=120, check=False)
    assert over.returncode != 0
    assert ('Reached maximum aggregate value "256MiB" for "limits.memory" in project "t28la"'
            in over.stderr), over.stderr
    # A hand-made instance (as a disposable) that fits takes 160MiB of the 256MiB (and
    # leaves room in cpu and processes: Incus names the first key over, in no set order).
    subprocess.run(["incus", "create", "--project", "t28la", image, "t28la-hand", "-c",
                    "limits.memory=160MiB", "-c", "limits.cpu=1", "-c", "limits.processes=10"],
                   capture_output=True, text=True, timeout=120, check=True)
    try:
        doc = description()
        doc["domains"]["t28la"]["machines"]["t28la-two"] = {
            "ip": f"{BASE}.1.11", "config": {**SHARE, "limits.memory": "96MiB"}}
        lab.write(doc)  # 64MiB + 96MiB fit the 256MiB: sync accepts it
        rc, out = lab.make("apply")
        assert rc != 0
        lines = [line for line in out.splitlines()
                 if "domain t28la: instance t28la-two does not fit its memory budget" in line]
        assert lines, out[-4000:]
        assert "raise domains.t28la.limits.memory" in lines[0]
        assert "t28la-two" not in status()
    finally:
        subprocess.run(["incus", "delete", "--force", "--project", "t28la", "t28la-hand"],
                       capture_output=True, check=False)
        lab.write(description())


def test_a_budget_added_to_running_instances_is_refused_in_one_line_then_applies(
        lab: Lab) -> None:
    doc = description()
    limited = copy.deepcopy(doc)
    limited["domains"]["t28lb"]["limits"] = {"memory": "128MiB"}
    limited["domains"]["t28lb"]["machines"]["t28lb-one"]["config"] = {"limits.memory": "96MiB"}
    lab.write(limited)
    rc, out = lab.make("apply")
    assert rc != 0
    lines = [line for line in out.splitlines() if "domain t28lb: Incus refuses its memory "
             "budget while instance t28lb-one has no limits.memory" in line]
    assert lines and "make apply TAGS=instances" in lines[0], out[-4000:]
    assert "limits.memory" not in project_config("t28lb")
    # The documented order: the machines get their share, then the domain its budget.
    lab.ok("apply", "TAGS=instances")
    lab.ok("apply")
    assert project_config("t28lb")["limits.memory"] == "128MiB"
    # Removing the budget removes it from the project (the module owns those keys).
    lab.write(doc)
    lab.ok("apply")
    assert "limits.memory" not in project_config("t28lb")
    assert status() == {"t28la-one": "Running", "t28lb-one": "Running"}
