"""The admin machine as the controller (ADR-062), on the real daemon.

A lab (domains ``t20*``, owner ``t20ctl``, 10.128.x.0/24, nft table ``anklumet20``) is
brought up from the host like the shipped infra.yml. Then, as a user would: `make
admin-tree` copies the tree into the lab's admin machine, and inside it `make apply` adds
a machine in another domain, twice (the second changes nothing), `make snapshot` and `make
restore` act on that domain, and the rules it renders (the host's kernel untouched) are
the host's byte for byte; `make nftables-deploy FROM=admin` on the host loads them and
the isolation matrix holds. After `incus restart`, `make plan` works with no manual step.

Own lab: it needs an admin machine holding its own copy of the tree (make admin-tree) that runs
make apply itself; the tests add t20-per-new from inside, restore a snapshot of t20per, delete
and reload the table anklumet20 and restart the admin machine, which no other module's lab
provides or would survive.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import REPO, lab_make, lab_tree, recap, run, shipped_as_lab
from tests.integration.reconcile_lab import cleanup

PREFIX, OWNER, NFT_TABLE, BASE = "t20", "t20ctl", "anklumet20", "10.128"
ADM, ADM_PROJECT = "t20-adm-ansible", "t20adm"
PER, PRO, NEW = "t20-per-desktop", "t20-pro-dev", "t20-per-new"
TREE = "/root/anklume"
RULES = f"nftables/{NFT_TABLE}.nft"


def lab_infra() -> dict[str, Any]:
    """The shipped infra.yml without its homelab domain; only the admin machine provisioned."""
    doc = shipped_as_lab(PREFIX, OWNER, BASE)
    del doc["domains"][f"{PREFIX}lab"]
    for name, dom in doc["domains"].items():
        if name != ADM_PROJECT:
            for machine in dom["machines"].values():
                machine["roles"] = []
    return doc


def inside(command: str, timeout: float = 600) -> tuple[int, str]:
    """Run COMMAND in the admin machine's tree, as a user logged in there would."""
    proc = subprocess.run(
        ["incus", "exec", ADM, "--project", ADM_PROJECT, "--cwd", TREE, "--env",
         "ANSIBLE_NOCOLOR=1", "--", "sh", "-c", command],
        capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def host_table() -> str:
    return run(["nft", "-s", "list", "table", "inet", NFT_TABLE], check=False)


def ping(src: str, project: str, dst_ip: str) -> bool:
    return subprocess.run(["incus", "exec", src, "--project", project, "--", "ping", "-c", "1",
                           "-W", "1", dst_ip], capture_output=True, check=False).returncode == 0


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)
        # The host's lab imports the generator from the venv; the admin's copy needs its code.
        (root / "anklume").symlink_to(REPO / "anklume")
        (root / "nftables.yml").symlink_to(REPO / "nftables.yml")
        # The wheels and .deb files the host fetched once serve every tree (offline after).
        (root / ".cache").mkdir()
        (root / ".cache/admin_bootstrap").symlink_to(REPO / ".cache/admin_bootstrap")
        (REPO / ".cache/admin_bootstrap").mkdir(parents=True, exist_ok=True)
        self.out: dict[str, str] = {}

    def host(self, step: str, *args: str, rc: int = 0) -> str:
        code, out = lab_make(self.root, *args, timeout=900)
        self.out[step] = out
        assert code == rc, f"{step}: make {' '.join(args)} exited {code}:\n{out}"
        return out

    def admin(self, step: str, command: str, rc: int = 0) -> str:
        code, out = inside(command)
        self.out[step] = out
        assert code == rc, f"{step}: {command} exited {code} in {ADM}:\n{out}"
        return out


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, NFT_TABLE)
    lab = Lab(tmp_path_factory.mktemp("admin-controller"))
    try:
        (lab.root / "infra.yml").write_text(yaml.safe_dump(lab_infra(), sort_keys=False))
        lab.host("sync", "sync")
        allvars = lab.root / "group_vars/all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        lab.host("host apply", "apply")
        lab.host("admin-tree", "admin-tree")
        lab.host("admin-tree again", "admin-tree")
        lab.admin("first plan", "make plan")
        edited = yaml.safe_load(lab.admin("read infra.yml", "cat infra.yml"))
        edited["domains"][f"{PREFIX}per"]["machines"][NEW] = {
            "type": "lxc", "ip": f"{BASE}.1.11", "roles": ["base_system"]}
        code, out = inside(f"cat > infra.yml <<'EOF'\n{yaml.safe_dump(edited, sort_keys=False)}EOF")
        assert code == 0, out
        lab.out["table before"] = host_table()
        lab.admin("apply", "make apply")
        lab.admin("apply again", "make apply")
        lab.out["table after"] = host_table()
        yield lab
    finally:
        cleanup(PREFIX, NFT_TABLE)


def test_admin_tree_is_copied_once_and_then_left_to_the_admin(lab: Lab) -> None:
    assert f"to {ADM}:{TREE} in" in lab.out["admin-tree"], lab.out["admin-tree"]
    assert f"{ADM}:{TREE} exists: it is the admin machine's own tree, left as is" \
        in lab.out["admin-tree again"]
    assert "plan: 0 to create, 0 to change, 0 to remove" in lab.out["first plan"]


def test_apply_inside_creates_and_provisions_a_machine_in_another_domain(lab: Lab) -> None:
    out = lab.out["apply"]
    assert f"apply: + instance {NEW}" in out, out
    changed = recap(out)
    assert changed.get(NEW, 0) > 0, changed
    state = run(["incus", "list", NEW, "--project", f"{PREFIX}per", "-c", "s4", "-f", "csv"])
    assert state.startswith("RUNNING") and f"{BASE}.1.11" in state, state
    again = lab.out["apply again"]
    assert set(recap(again).values()) == {0}, recap(again)
    assert "apply: 0 created, 0 changed, 0 removed" in again


def test_the_run_inside_leaves_the_hosts_kernel_alone_and_says_so(lab: Lab) -> None:
    assert lab.out["table before"] == lab.out["table after"]
    assert f"apply: > nftables {TREE}/{RULES} (" in lab.out["apply"]
    assert "not loaded here: on the host run make nftables-deploy FROM=admin" in lab.out["apply"]


def test_snapshot_and_restore_from_inside(lab: Lab) -> None:
    lab.admin("snapshot", f"make snapshot NAME=t20snap DOMAIN={PREFIX}per")
    snaps = run(["incus", "query", f"/1.0/instances/{NEW}/snapshots?project={PREFIX}per"])
    assert "t20snap" in snaps
    run(["incus", "exec", NEW, "--project", f"{PREFIX}per", "--", "touch", "/root/after"])
    lab.admin("restore", f"make restore NAME=t20snap DOMAIN={PREFIX}per")
    gone = subprocess.run(["incus", "exec", NEW, "--project", f"{PREFIX}per", "--", "test", "-e",
                           "/root/after"], check=False).returncode
    assert gone == 1, "restore did not bring back the snapshot's file system"
    # Incus copies the snapshot's empty description over the instance's; ours is put back.
    desc = run(["incus", "query", f"/1.0/instances/{PER}?project={PREFIX}per"])
    assert '"description": "Personal desktop environment"' in desc


def test_rules_rendered_inside_are_the_hosts_and_the_host_loads_them(lab: Lab) -> None:
    inner = run(["incus", "file", "pull", "--project", ADM_PROJECT, f"{ADM}{TREE}/{RULES}", "-"])
    (lab.root / "infra.yml").write_text(lab.admin("infra", "cat infra.yml"))
    lab.host("host render", "nftables", "MODE=file")
    assert (lab.root / RULES).read_text() == inner
    run(["nft", "delete", "table", "inet", NFT_TABLE])
    out = lab.host("deploy", "nftables-deploy", "FROM=admin", f"NFT_FILE={RULES}")
    assert f"loaded table inet {NFT_TABLE}" in out, out
    assert ping(ADM, ADM_PROJECT, f"{BASE}.1.11"), "admin cannot reach the new machine"
    assert ping(ADM, ADM_PROJECT, f"{BASE}.2.10"), "admin cannot reach pro"
    assert not ping(NEW, f"{PREFIX}per", f"{BASE}.2.10"), "perso reached pro"
    assert not ping(PRO, f"{PREFIX}pro", f"{BASE}.1.11"), "pro reached perso"
    assert not ping(PRO, f"{PREFIX}pro", f"{BASE}.1.10"), "pro reached perso"


def test_deploy_refuses_a_file_that_touches_another_table(lab: Lab) -> None:
    bad = (lab.root / RULES).read_text() + "\ntable ip filter {\n}\n"
    code, out = inside(f"cat > {RULES}.bad <<'EOF'\n{bad}EOF")
    assert code == 0, out
    before = run(["nft", "-s", "list", "ruleset"])
    out = lab.host("deploy bad", "nftables-deploy", "FROM=admin", f"NFT_FILE={RULES}.bad", rc=2)
    assert "touches more than table inet anklumet20: 'table ip filter {'" in out, out
    assert run(["nft", "-s", "list", "ruleset"]) == before


def test_plan_works_after_the_admin_machine_restarts(lab: Lab) -> None:
    run(["incus", "restart", ADM, "--project", ADM_PROJECT], timeout=120)
    out = lab.admin("plan after restart", "make plan")
    assert "plan: 0 to create, 0 to change, 0 to remove" in out, out
