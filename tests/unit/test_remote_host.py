"""A remote Incus host (global.incus_remote): the pure parts of trust, images and isolation.

Which local images a remote needs (scripts/remote_image.py), how the plan reads the remote's
record of the ruleset it loaded (anklume_nftables with load=false and a remote), and the
one-line refusals of `make remote-add` / `make remote-token`. The real remote is
tests/integration/test_remote.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import REPO
from tests.unit.fake_incus import FakeIncus, run

pytestmark = pytest.mark.unit


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


remote_image = _script("remote_image")


@pytest.mark.parametrize(("image", "alias"), [
    ("anklume/debian-12", "anklume/debian-12"), ("local:anklume/debian-12", "anklume/debian-12"),
    ("images:debian/13", None), ("lab:debian", None), ("", None), ("local:", None)])
def test_only_images_held_here_are_copied(image: str, alias: str | None) -> None:
    assert remote_image.local_alias(image) == alias


def test_images_needed_are_those_of_declared_machines_once_each() -> None:
    allvars = {"anklume_default_os_image": "anklume/debian-12", "anklume_domains": {
        "a": {"machines": ["a1", "a2"]}, "b": {"machines": ["b1", "b2"]}}}
    hostvars = {"a1": {}, "a2": {"instance_os_image": "anklume/debian-12"},
                "b1": {"instance_os_image": "local:anklume/tools"},
                "b2": {"instance_os_image": "images:debian/13"},
                "gone": {"instance_os_image": "anklume/old"}}
    assert remote_image.images_needed(allvars, hostvars) == ["anklume/debian-12", "anklume/tools"]


def test_remote_image_without_a_rendered_tree_says_so(tmp_path: Path) -> None:
    proc = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts/remote_image.py"),
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "remote-image: no group_vars/all.yml here: run `make sync` first\n"


def test_remote_image_does_nothing_for_the_local_remote(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "anklume_incus_remote: local\nanklume_domains: {a: {machines: [a1]}}\n")
    proc = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts/remote_image.py"),
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(("args", "line"), [
    (["remote-add"], "remote-add: REMOTE=<name> and TOKEN=<token> are required (on the remote "
                     "host: make remote-token CLIENT=<this machine>)"),
    (["remote-add", "REMOTE=lab"], None),
    (["remote-add", "TOKEN=abc"], None),
    (["remote-add", "REMOTE=a b", "TOKEN=abc"],
     "remote-add: REMOTE 'a b': use letters, digits, dashes or underscores"),
    (["remote-add", "REMOTE=lab", "TOKEN=garbage"],
     "remote-add: TOKEN is not an Incus trust token (make remote-token CLIENT=<this machine> "
     "prints one on the remote host)"),
    (["remote-token"], "remote-token: CLIENT=<name of the controller> is required"),
    (["remote-token", "CLIENT=x;y"],
     "remote-token: CLIENT 'x;y': use letters, digits, dots, dashes or underscores"),
])
def test_trust_targets_refuse_missing_arguments_in_one_line(args: list[str],
                                                            line: str | None) -> None:
    proc = subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == (line or first) and first.startswith(args[0] + ": ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


class Server(FakeIncus):
    """A remote whose server configuration holds CONFIG (deploy-nftables.sh's record)."""

    def __init__(self, config: dict[str, str]) -> None:
        super().__init__()
        self.config = config

    def get(self, path: str, project: str | None = None, params: dict | None = None,
            what: str | None = None) -> Any:
        assert path == "/1.0"
        self.calls += 1
        return {"config": dict(self.config), "environment": {}}


RULES = "table inet t {\n}\ndelete table inet t\ntable inet t {\n}\n"
SHA = hashlib.sha256(RULES.encode()).hexdigest()


def nft_plan(tmp_path: Path, config: dict[str, str], check: bool = False,
             written: bool = True) -> dict[str, Any]:
    path = tmp_path / "t.nft"
    if written:
        path.write_text(RULES)
    params = {"content": RULES, "path": str(path), "table": "t", "load": False,
              "remote": "lab", "nft": "/nonexistent/nft"}
    return run("anklume_nftables", params, Server(config), check_mode=check)


def test_a_remote_without_a_record_is_missing_with_the_command_to_run(tmp_path: Path) -> None:
    result = nft_plan(tmp_path, {})
    assert result["remote_state"] == "missing" and not result.get("failed")
    [entry] = result["plan"]
    assert entry["action"] == "deploy" and entry["name"] == "table inet t on lab"
    assert entry["reason"] == (
        f"missing on lab: no ruleset recorded there; copy {tmp_path}/t.nft to that host and "
        "run there, as root: scripts/deploy-nftables.sh t.nft")


def test_a_remote_holding_the_rendered_ruleset_needs_nothing(tmp_path: Path) -> None:
    result = nft_plan(tmp_path, {"user.anklume.nftables.t.sha256": SHA})
    assert result["remote_state"] == "current" and result["plan"] == []
    assert not result["changed"]


def test_a_remote_holding_another_ruleset_is_stale(tmp_path: Path) -> None:
    old = "0123456789ab" + "0" * 52
    result = nft_plan(tmp_path, {"user.anklume.nftables.t.sha256": old}, check=True,
                      written=False)
    [entry] = result["plan"]
    assert result["remote_state"] == "stale"
    assert entry["reason"].startswith(
        f"stale on lab: it holds sha256 0123456789ab, infra.yml now renders {SHA[:12]}; "
        "make apply (it renders the file), then copy ")
    assert not (tmp_path / "t.nft").exists()  # a plan writes nothing


class ClusterServer(Server):
    """A cluster of members m1 and m2 sharing CONFIG; each member has its own kernel."""

    def get(self, path: str, project: str | None = None, params: dict | None = None,
            what: str | None = None) -> Any:
        self.calls += 1
        if path == "/1.0/cluster/members":
            return [{"server_name": "m1"}, {"server_name": "m2"}]
        assert path == "/1.0"
        return {"config": dict(self.config), "environment": {"server_clustered": True}}


def cluster_plan(tmp_path: Path, config: dict[str, str]) -> dict[str, Any]:
    path = tmp_path / "t.nft"
    path.write_text(RULES)
    params = {"content": RULES, "path": str(path), "table": "t", "load": False,
              "remote": "lab", "nft": "/nonexistent/nft"}
    return run("anklume_nftables", params, ClusterServer(config))


def test_a_cluster_names_each_member_whose_kernel_lacks_the_ruleset(tmp_path: Path) -> None:
    old = "0123456789ab" + "0" * 52
    result = cluster_plan(tmp_path, {"user.anklume.nftables.t.m2.sha256": old,
                                     # a single host's key says nothing about any member
                                     "user.anklume.nftables.t.sha256": SHA})
    [entry] = result["plan"]
    assert result["remote_state"] == "missing"
    assert entry["reason"] == (
        "missing on lab member m1: no ruleset recorded there; stale on lab member m2: it holds "
        f"sha256 0123456789ab, infra.yml now renders {SHA[:12]}; copy {tmp_path}/t.nft to each "
        "member named and run there, as root: scripts/deploy-nftables.sh t.nft")


def test_a_cluster_whose_members_all_hold_the_ruleset_needs_nothing(tmp_path: Path) -> None:
    result = cluster_plan(tmp_path, {"user.anklume.nftables.t.m1.sha256": SHA,
                                     "user.anklume.nftables.t.m2.sha256": SHA})
    assert result["remote_state"] == "current" and result["plan"] == []


def test_the_record_of_another_table_does_not_count(tmp_path: Path) -> None:
    result = nft_plan(tmp_path, {"user.anklume.nftables.other.sha256": SHA})
    assert result["remote_state"] == "missing"


def test_the_record_key_is_the_one_deploy_nftables_writes() -> None:
    from tests.unit.fake_incus import module
    key = module("anklume_nftables").record_key("anklume")
    assert key == "user.anklume.nftables.anklume.sha256"
    script = (REPO / "scripts" / "deploy-nftables.sh").read_text()
    assert "key=user.anklume.nftables.$table${member:+.$member}.sha256" in script
    assert module("anklume_nftables").record_key("anklume", "m1") == (
        "user.anklume.nftables.anklume.m1.sha256")


def _unknown_remote_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A rendered tree on remote `nope`, and a PATH whose `incus` knows no such remote."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "anklume_incus_remote: nope\nanklume_default_os_image: anklume/debian-12\n"
        "anklume_domains: {a: {machines: [a1]}}\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "incus").write_text(
        "#!/bin/sh\necho 'Error: The remote \"nope\" doesn'\\''t exist' >&2\nexit 1\n")
    (fake / "incus").chmod(0o755)
    return tmp_path, {"PATH": f"{fake}:/usr/bin:/bin"}


@pytest.mark.parametrize(("script", "line"), [
    ("remote_image", "remote-image: remote nope does not answer: The remote \"nope\" doesn't "
                     "exist (trust it first: make remote-add REMOTE=nope TOKEN=<from make "
                     "remote-token on that host>)"),
    ("status", "status: reading instances from nope: The remote \"nope\" doesn't exist (a "
               "remote: trust it with make remote-add REMOTE=nope TOKEN=<token>)"),
])
def test_an_unknown_remote_is_one_line_and_exit_2(tmp_path: Path, script: str, line: str) -> None:
    root, env = _unknown_remote_tree(tmp_path)
    proc = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts" / f"{script}.py"),
                           str(root)], capture_output=True, text=True, check=False, env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")


def test_a_remote_is_never_this_machine_for_rules_or_gpu_user_space() -> None:
    """A daemon in its own namespace shares this hostname yet is not local (no Incus call)."""
    from ansible_collections.anklume.incus.plugins.filter.controller import incus_runs_here

    assert incus_runs_here("t16r") is False
    assert incus_runs_here("lab-server") is False
