"""The Incus-in-Incus test runner (ADR-063), on the real daemon.

From nothing, `make test-runner-create` builds a runner (``t13-runner`` in project
``t13run``, owner ``anklume-runner``) with its own Incus, the tree, the virtualenv and the
image; a second run changes nothing; `make test-sandboxed ROLE=base_system` passes the
Molecule scenario inside it and copies the JUnit XML back; the host's projects, networks
and nftables tables are the same as before apart from the runner's project; `make
test-runner-destroy` leaves no instance, profile, project, image or host file behind.
Leftovers of an interrupted run are removed at the start and the end. Everything runs
from a frozen copy of the working tree (the archive the runner gets, the repository's
.venv linked in): other people editing the repository meanwhile do not change what the
runner holds, so the second create must change nothing.

Own lab: the Incus-in-Incus runner t13-runner (project t13run) is what is tested: make
test-runner-create builds it from a frozen tree and make test-runner-destroy must leave nothing
behind, so no lab of another module can stand in for it.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import REPO, VENV_BIN, lab_make, query, recap, run

RUNNER, PROJECT = "t13-runner", "t13run"
CACHE = Path(".cache") / "dev_test_runner" / f"{PROJECT}.{RUNNER}"
NAMES = {"RUNNER": RUNNER, "RUNNER_PROJECT": PROJECT}
# Other engineers' test labs come and go on the same daemon while this runs; the host's
# own objects (the shipped domains, the default project) must not move; ours are counted.
OTHER_LABS = re.compile(rf"^(net-)?(?!{PROJECT}$)[tb]\d+|^anklumet\d+")


def make(tree: Path, *args: str, timeout: float = 900, **env: str) -> str:
    rc, out = lab_make(tree, *args, *(f"{k}={v}" for k, v in NAMES.items()),
                       timeout=timeout, **env)
    assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out[-6000:]}"
    return out


def inside(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["incus", "exec", RUNNER, "--project", PROJECT, "--", *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def host_state() -> dict[str, Any]:
    """Projects, networks and nftables tables of the host, other test labs left out."""
    projects = sorted(p["name"] for p in listing("/1.0/projects?recursion=1")
                      if not OTHER_LABS.match(p["name"]))
    networks = {n["name"]: n["config"] for n in listing("/1.0/networks?recursion=1")
                if n["managed"] and not OTHER_LABS.match(n["name"])}
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout.split("\n")
    production = subprocess.run(["nft", "list", "table", "inet", "anklume"],
                                capture_output=True, text=True, check=False)
    return {"projects": projects, "networks": networks,
            "tables": sorted(t for t in tables if t and not OTHER_LABS.match(t.split()[-1])),
            "anklume_table": production.stdout}


def listing(path: str) -> list[dict[str, Any]]:
    found = query(path)
    assert isinstance(found, list), found
    return found


def images() -> list[str]:
    return sorted(i["fingerprint"] for i in listing("/1.0/images?recursion=1"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the working tree, unpacked from the archive the runner gets."""
    root = tmp_path_factory.mktemp("t13tree")
    archive = root.parent / "t13tree.tar.gz"
    run([str(VENV_BIN / "python"), str(REPO / "scripts" / "runner_tree.py"), str(archive)])
    run(["tar", "-xzf", str(archive), "-C", str(root)])
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


@pytest.fixture(scope="module")
def before(tree: Path) -> Iterator[dict[str, Any]]:
    make(tree, "test-runner-destroy")   # an interrupted run's leftovers
    state: dict[str, Any] = {"host": host_state(), "images": images()}
    assert PROJECT not in state["host"]["projects"]
    yield state
    make(tree, "test-runner-destroy")


@pytest.fixture(scope="module")
def created(tree: Path, before: dict[str, Any]) -> str:
    return make(tree, "test-runner-create")


def test_create_from_nothing_gives_a_working_inner_incus(created: str) -> None:
    assert recap(created).get(RUNNER, 0) > 0
    # By alias exactly: a list filter also matches anklume/debian-12-gui.
    alias = "/1.0/images/aliases/anklume/debian-12"
    proc = inside("incus", "query", alias)
    host_fp = json.loads(subprocess.run(["incus", "query", alias], capture_output=True,
                                        text=True, check=True).stdout)["target"]
    assert proc.returncode == 0 and json.loads(proc.stdout)["target"] == host_fp, proc.stderr
    pool = inside("incus", "storage", "show", "default")
    assert pool.returncode == 0, pool.stderr
    bridge = json.loads(inside("incus", "query", "/1.0/networks/incusbr0").stdout)
    assert bridge["config"]["ipv4.address"] == "10.250.0.1/24"
    tree = inside("test", "-f", "/root/anklume/Makefile")
    tools = inside("/root/anklume/.venv/bin/python", "-c", "import molecule, ansiblelint, anklume")
    assert tree.returncode == 0 and tools.returncode == 0, tools.stderr


def test_the_runner_sees_no_production(created: str) -> None:
    expanded = query(f"/1.0/instances/{RUNNER}?project={PROJECT}")
    assert isinstance(expanded, dict), expanded
    devices = expanded["expanded_devices"]
    assert not [d for d in devices.values() if d["type"] in {"nic", "proxy"}], devices
    assert expanded["expanded_config"]["security.nesting"] == "true"
    links = inside("ip", "-o", "link").stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    # Only loopback and the inner Incus's own bridge (and its containers' veths).
    assert {n for n in names if not n.startswith("veth")} <= {"lo", "incusbr0"}, links
    # admin_bootstrap's path for the host socket; the inner client talks to its own daemon.
    socket = inside("sh", "-c", "test ! -e /var/lib/incus-host.sock && incus query /1.0")
    assert socket.returncode == 0, socket.stderr
    assert json.loads(socket.stdout)["environment"]["server_clustered"] is False
    projects = json.loads(inside("incus", "query", "/1.0/projects").stdout)
    assert projects == ["/1.0/projects/default"], "the inner daemon holds the host's projects"


def test_second_create_changes_nothing(tree: Path, created: str) -> None:
    again = make(tree, "test-runner-create")
    assert recap(again) == {"localhost": 0, RUNNER: 0}, again[-3000:]


def test_base_system_molecule_passes_inside(tree: Path, created: str,
                                             before: dict[str, Any], tmp_path: Path) -> None:
    out = make(tree, "test-sandboxed", "ROLE=base_system", RUNNER_LOGS=str(tmp_path))
    reports = list(tmp_path.glob("*/junit.xml"))
    assert len(reports) == 1, out[-3000:]
    suite = ET.parse(reports[0]).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1", reports[0].read_text()[:2000]
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    assert "base_system" in (reports[0].parent / "pytest.log").read_text()
    host = host_state()
    assert host["projects"] == sorted([*before["host"]["projects"], PROJECT])
    assert {k: v for k, v in host.items() if k != "projects"} == \
        {k: v for k, v in before["host"].items() if k != "projects"}


def test_destroy_leaves_nothing_behind(tree: Path, created: str,
                                       before: dict[str, Any]) -> None:
    assert (tree / CACHE).is_dir()
    make(tree, "test-runner-destroy")
    assert host_state() == before["host"]
    assert images() == before["images"]
    assert PROJECT not in [p["name"] for p in listing("/1.0/projects?recursion=1")]
    assert not [i for i in listing("/1.0/instances?all-projects=true&recursion=1")
                if i["name"] == RUNNER]
    assert not (tree / CACHE).exists() and not (tree / CACHE.parent).exists()


DECLARED, DECLARED_PROJECT = "t13-declared", "t13dec"


def forget_declared() -> None:
    subprocess.run(["incus", "delete", "--force", DECLARED, "--project", DECLARED_PROJECT],
                   capture_output=True, check=False)
    subprocess.run(["incus", "project", "delete", DECLARED_PROJECT],
                   capture_output=True, check=False)


@pytest.fixture
def declared() -> Iterator[None]:
    """A stopped container another infra (owner t13other) declares, in a project of its own."""
    forget_declared()
    run(["incus", "project", "create", DECLARED_PROJECT, "-c", "features.images=false"])
    run(["incus", "profile", "device", "add", "default", "root", "disk", "path=/",
         "pool=default", "--project", DECLARED_PROJECT])
    run(["incus", "init", "anklume/debian-12", DECLARED, "--project", DECLARED_PROJECT,
         "-c", "user.anklume.owner=t13other"])
    yield
    forget_declared()


def test_a_runner_an_infra_declares_is_not_deleted(declared: None) -> None:
    rc, out = lab_make(REPO, "test-runner-destroy", f"RUNNER={DECLARED}",
                       f"RUNNER_PROJECT={DECLARED_PROJECT}", timeout=300)
    assert rc != 0 and "belongs to the infra t13other" in out, out[-3000:]
    assert query(f"/1.0/instances/{DECLARED}?project={DECLARED_PROJECT}")
