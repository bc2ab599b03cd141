"""Phases 2 and 2b on the real Incus daemon: apply, idempotence, plan, tags, limit, drift,
orphans, an interrupted apply, destroy and the admin socket.

The tests share one lab (owner t4test, domains t4a..t4e, 10.140.x) and run in file order:
each starts from the state the previous one left, which keeps the suite to a few minutes.

Own lab: its first test plans from nothing (12 to create) and applies; the others delete
instances, kill an apply midway, add then prune domain t4e and end with destroy FORCE=1, so the
lab cannot be one another module reads.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.incus_helpers import create_network, recap
from tests.integration.reconcile_lab import (
    BASE,
    PREFIX,
    Lab,
    all_instances,
    cleanup,
    incus_query,
    ipv4,
    summary,
    wait_for,
)

pytestmark = pytest.mark.incus

MACHINES = {f"{PREFIX}a": f"{PREFIX}a-ansible", f"{PREFIX}b": f"{PREFIX}b-desktop",
            f"{PREFIX}c": f"{PREFIX}c-dev", f"{PREFIX}d": f"{PREFIX}d-llm"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup()
    lab = Lab(Path(tmp_path_factory.mktemp("reconcile")))
    lab.write()
    yield lab
    cleanup()


def incus(*args: str) -> str:
    """`incus ARGS`; asked again (twice at most) when Incus lost a race with a veth that
    went away while it listed a bridge's interfaces ("Failed to delete bridge children
    interfaces ... does not exist"): the daemon's own race, seen once in CI, not ours."""
    for attempt in range(3):
        proc = subprocess.run(["incus", *args], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout
        if "bridge children interfaces" not in proc.stderr or attempt == 2:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout,
                                                proc.stderr)
        time.sleep(1)
    raise AssertionError("unreachable")


def converged() -> None:
    insts = all_instances()
    for i, (domain, machine) in enumerate(MACHINES.items()):
        net = incus_query(f"/1.0/networks/net-{domain}")
        assert net["config"]["ipv4.address"] == f"{BASE}.{i}.254/24"
        assert net["config"]["user.anklume.managed"] == "true"
        inst = insts[(domain, machine)]
        assert inst["status"] == "Running"
        assert f"{BASE}.{i}.10" in ipv4(inst)
        assert inst["config"]["security.protection.delete"] == "true"


def ready_record(lab: Lab) -> dict:
    """The instances role's record of the instances it saw ready (ADR-097)."""
    return json.loads((lab.root / ".cache" / "anklume" / "ready.json").read_text())


def recorded_as_running(lab: Lab, machine: str, domain: str, index: int) -> None:
    """MACHINE is kept as seen ready at the start Incus reports, with its declared address."""
    inst = all_instances()[(domain, machine)]
    seen = ready_record(lab)[f"local:{domain}/{machine}"]
    assert seen["started"] == inst["last_used_at"], (seen, inst["last_used_at"])
    assert seen["ip"] == f"{BASE}.{index}.10" and seen["ip"] in seen["addresses"], seen


def test_cold_apply_then_noop_and_empty_plan(lab: Lab) -> None:
    plan = lab.make("plan")
    assert summary(plan) == "plan: 12 to create, 0 to change, 0 to remove, 0 orphans " \
                            "(PRUNE=1 removes)", plan
    assert not [k for k in all_instances() if k[0].startswith(PREFIX)]
    out = lab.make("apply")
    assert "plan: " not in out and "DEPRECATION" not in out, out
    converged()
    again = lab.make("apply")
    changed = recap(again)
    assert changed and all(v == 0 for v in changed.values()), again
    for i, (domain, machine) in enumerate(MACHINES.items()):
        recorded_as_running(lab, machine, domain, i)
    assert "DEPRECATION" not in again and "[WARNING]" not in again, again
    plan = lab.make("plan")
    assert summary(plan) == "plan: 0 to create, 0 to change, 0 to remove, 0 orphans " \
                            "(PRUNE=1 removes)", plan
    status = lab.make("status")
    for i, (domain, machine) in enumerate(MACHINES.items()):
        row = rf"^{domain}\s+{machine}\s+lxc\s+RUNNING\s+{BASE}\.{i}\.10$"
        assert re.search(row, status, re.MULTILINE), status


def test_admin_socket_survives_restart(lab: Lab) -> None:
    name, project = MACHINES[f"{PREFIX}a"], f"{PREFIX}a"
    probe = ("import socket,http.client\n"
             "class C(http.client.HTTPConnection):\n"
             "    def connect(self):\n"
             "        self.sock=socket.socket(socket.AF_UNIX)\n"
             "        self.sock.connect('/var/lib/incus-host.sock')\n"
             "c=C('x'); c.request('GET','/1.0/instances?all-projects=true')\n"
             "print(c.getresponse().status)\n")
    incus("restart", "--project", project, name)
    out = wait_for(lambda: subprocess.run(
        ["incus", "exec", "--project", project, name, "--", "python3", "-c", probe],
        capture_output=True, text=True, check=False).stdout.strip() == "200", timeout=30)
    assert out
    # Only the admin domain gets the socket.
    other = incus_query(f"/1.0/instances/{MACHINES[f'{PREFIX}b']}?project={PREFIX}b")
    assert "incus-socket" not in other["devices"]


def test_tags_and_limit_touch_only_their_scope(lab: Lab) -> None:
    incus("network", "set", f"net-{PREFIX}b", "ipv4.nat=false")
    incus("config", "set", "--project", f"{PREFIX}c", MACHINES[f"{PREFIX}c"], "limits.cpu=1")
    incus("config", "set", "--project", f"{PREFIX}d", MACHINES[f"{PREFIX}d"], "limits.cpu=1")
    plan = lab.make("plan")
    assert f"~ network net-{PREFIX}b: ipv4.nat" in plan
    assert f"~ instance {MACHINES[f'{PREFIX}c']}: config.limits.cpu" in plan
    assert "0 to create, 3 to change" in summary(plan), plan

    out = lab.make("apply", "TAGS=networks")
    assert incus_query(f"/1.0/networks/net-{PREFIX}b")["config"]["ipv4.nat"] == "true"
    assert f"instance {MACHINES[f'{PREFIX}c']}" not in out
    insts = all_instances()
    assert insts[(f"{PREFIX}c", MACHINES[f"{PREFIX}c"])]["config"].get("limits.cpu") == "1"

    out = lab.make("apply", f"LIMIT={PREFIX}c")
    insts = all_instances()
    assert "limits.cpu" not in insts[(f"{PREFIX}c", MACHINES[f"{PREFIX}c"])]["config"]
    assert insts[(f"{PREFIX}d", MACHINES[f"{PREFIX}d"])]["config"].get("limits.cpu") == "1"
    assert set(recap(out)) == {MACHINES[f"{PREFIX}c"]}, out

    lab.make("apply")
    insts = all_instances()
    assert "limits.cpu" not in insts[(f"{PREFIX}d", MACHINES[f"{PREFIX}d"])]["config"]
    # The machine restarted by the test before was waited for again, and kept at its new start.
    recorded_as_running(lab, MACHINES[f"{PREFIX}a"], f"{PREFIX}a", 0)


def test_deleted_instance_is_planned_and_recreated(lab: Lab) -> None:
    name, project = MACHINES[f"{PREFIX}b"], f"{PREFIX}b"
    incus("config", "set", "--project", project, name, "security.protection.delete=false")
    incus("delete", "--force", "--project", project, name)
    plan = lab.make("plan")
    assert f"+ instance {name}" in plan
    assert summary(plan).startswith("plan: 1 to create, 0 to change"), plan
    lab.make("apply")
    converged()


def test_interrupted_apply_converges_without_duplicate(lab: Lab) -> None:
    name, project = MACHINES[f"{PREFIX}d"], f"{PREFIX}d"
    incus("config", "set", "--project", project, name, "security.protection.delete=false")
    incus("delete", "--force", "--project", project, name)
    proc = lab.start_make("apply")
    try:
        wait_for(lambda: (project, name) in all_instances(), timeout=120)
    finally:
        Lab.kill(proc)
    lab.make("apply")
    converged()
    assert [k for k in all_instances() if k[1] == name] == [(project, name)]


def test_orphans_reported_then_pruned(lab: Lab) -> None:
    lab.domains[f"{PREFIX}e"] = {
        "description": "short-lived", "subnet_id": 4, "ephemeral": True,
        "profiles": {"nest": {"config": {"security.nesting": "true"}}},
        "machines": {f"{PREFIX}e-tmp": {"type": "lxc", "ip": f"{BASE}.4.10",
                                         "profiles": ["default", "nest"]}},
    }
    lab.write()
    lab.make("apply")
    assert all_instances()[(f"{PREFIX}e", f"{PREFIX}e-tmp")]["status"] == "Running"
    del lab.domains[f"{PREFIX}e"]
    lab.write()
    # Someone else's bridge in our naming scheme, without our marker: never an orphan.
    create_network(f"net-{PREFIX}z", f"ipv4.address={BASE}.9.254/24", "ipv6.address=none")
    plan = lab.make("plan")
    assert f"net-{PREFIX}z" not in plan, plan
    assert f"? instance {PREFIX}e-tmp" in plan and f"? network net-{PREFIX}e" in plan, plan
    assert summary(plan).endswith("4 orphans (PRUNE=1 removes)"), plan
    out = lab.make("apply")
    assert summary(out, "apply").endswith("4 orphans (PRUNE=1 removes)"), out
    assert (f"{PREFIX}e", f"{PREFIX}e-tmp") in all_instances()
    out = lab.make("apply", "PRUNE=1")
    assert (f"{PREFIX}e", f"{PREFIX}e-tmp") not in all_instances()
    names = {n["name"] for n in incus_query("/1.0/networks?recursion=1")}
    assert f"net-{PREFIX}e" not in names
    assert f"net-{PREFIX}z" in names
    incus("network", "delete", f"net-{PREFIX}z")
    assert f"{PREFIX}e" not in {p["name"] for p in incus_query("/1.0/projects?recursion=1")}
    plan = lab.make("plan")
    assert summary(plan).endswith(" 0 orphans (PRUNE=1 removes)"), plan


def test_destroy_keeps_protected_unless_forced(lab: Lab) -> None:
    lab.domains[f"{PREFIX}b"]["ephemeral"] = True
    lab.write()
    lab.make("apply")
    out = lab.make("destroy")
    insts = all_instances()
    assert (f"{PREFIX}b", MACHINES[f"{PREFIX}b"]) not in insts, out
    assert f"net-{PREFIX}b" not in {n["name"] for n in incus_query("/1.0/networks?recursion=1")}
    for domain in (f"{PREFIX}a", f"{PREFIX}c", f"{PREFIX}d"):
        assert insts[(domain, MACHINES[domain])]["status"] == "Running", out
    assert "protected" in out
    lab.make("destroy", "FORCE=1")
    assert not [k for k in all_instances() if k[0].startswith(PREFIX)]
    assert not [p for p in incus_query("/1.0/projects?recursion=1")
                if p["name"].startswith(PREFIX)]
