"""Issue 18: a class of six students from one declaration, on the real Incus daemon.

A throw-away AnKLuMe tree (owner ``t18class``, nft table ``anklumet18``, 10.118.x.0/24):
an admin domain ``t18adm`` (teacher ``t18-teacher``) and ``domain_templates.t18s`` with
``count: 6``, which makes ``t18s01``..``t18s06``, each with a server ``t18sNN-srv`` at
10.118.(10+N).10. Everything goes through the Makefile: apply, status, class-wide
snapshot and restore (``DOMAIN=<template>`` / ``DOMAIN=<pattern>``), a lower count, prune
and a class-wide destroy. The tests share the lab and run in file order.

Own lab: it needs a domain template (t18s, count 6) beside an admin domain, and its tests lower
the count to four, prune two student domains and destroy the class, which no other module's lab
has or would survive.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_make, lab_tree, recap
from tests.integration.reconcile_lab import all_instances, cleanup, incus_query, ipv4

PREFIX, OWNER, NFT_TABLE, BASE = "t18", "t18class", "anklumet18", "10.118"
ADMIN, TEACHER, TEMPLATE = "t18adm", "t18-teacher", "t18s"


def student(n: int) -> tuple[str, str, str]:
    """Domain, server and address of student N."""
    return f"{TEMPLATE}{n:02d}", f"{TEMPLATE}{n:02d}-srv", f"{BASE}.{10 + n}.10"


def infra(count: int) -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": ADMIN},
        "domains": {ADMIN: {"subnet_id": 1, "ephemeral": False, "machines": {
            TEACHER: {"ip": f"{BASE}.1.10"}}}},
        "domain_templates": {TEMPLATE: {
            "count": count, "first_subnet_id": 11, "ephemeral": True,
            "description": "issue 18 student {n}",
            "machines": {"srv": {"ip_host": 10, "config": {"limits.memory": "512MiB"}}},
        }},
    }


def make(root: Path, *args: str, timeout: float = 900) -> str:
    rc, out = lab_make(root, *args, timeout=timeout)
    assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out}"
    return out


def write(root: Path, count: int) -> None:
    (root / "infra.yml").write_text(yaml.safe_dump(infra(count), sort_keys=False))


def project_of(name: str) -> str:
    return ADMIN if name == TEACHER else name.rsplit("-", 1)[0]


def sh(name: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["incus", "exec", name, "--project", project_of(name), "--",
                           "sh", "-c", script], capture_output=True, text=True, check=check,
                          timeout=60)


def read(name: str, path: str) -> str:
    """A file's content through Incus's file API: a restore restarts the instance, and a
    check should not also depend on an exec's output stream in its first seconds."""
    return subprocess.run(["incus", "file", "pull", "--project", project_of(name),
                           f"{name}{path}", "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def snapshots(name: str) -> set[str]:
    items = incus_query(f"/1.0/instances/{name}/snapshots?project={project_of(name)}")
    return {str(s).split("?")[0].rsplit("/", 1)[-1] for s in items or []}


def ours() -> dict[str, dict[str, Any]]:
    return {name: inst for (project, name), inst in all_instances().items()
            if project.startswith(PREFIX)}


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cleanup(prefix=PREFIX, nft_table=NFT_TABLE)  # leftovers of an interrupted run
    root = lab_tree(tmp_path_factory.mktemp("class"))
    write(root, 6)
    try:
        make(root, "sync")
        # The isolation rules go to a table of our own, never the real `inet anklume`.
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT_TABLE}\n")
        yield root
    finally:
        cleanup(prefix=PREFIX, nft_table=NFT_TABLE)


def test_sync_dry_shows_the_expansion(lab: Path) -> None:
    out = make(lab, "sync-dry")
    assert (f"template {TEMPLATE}: 6 domains t18s01..t18s06, 6 machines, subnets "
            f"{BASE}.11.0/24..{BASE}.16.0/24") in out, out


def test_the_class_of_six_converges(lab: Path) -> None:
    out = make(lab, "apply", "TAGS=infra")
    created = set(re.findall(r"^apply: \+ instance (\S+) \(image \S+\)$", out, re.MULTILINE))
    assert created == {TEACHER} | {student(n)[1] for n in range(1, 7)}, out
    insts = ours()
    for n in range(1, 7):
        domain, server, ip = student(n)
        assert insts[server]["project"] == domain
        assert insts[server]["status"] == "Running", server
        assert ip in ipv4(insts[server]), (server, ipv4(insts[server]))
    out = make(lab, "apply", "TAGS=infra")
    assert recap(out) and set(recap(out).values()) == {0}, out


def test_status_lists_each_student_with_its_address_under_the_template(lab: Path) -> None:
    out = make(lab, "status")
    lines = out.splitlines()
    header = lines.index(f"-- template {TEMPLATE}: 6 domains, 6/6 instances running")
    rows = [line.split() for line in lines[header + 1:header + 7]]
    assert rows == [[d, s, "lxc", "RUNNING", ip] for d, s, ip in map(student, range(1, 7))], out
    assert lines.index(next(x for x in lines if x.startswith(ADMIN))) < header, out


def test_students_are_isolated_and_the_teacher_reaches_them(lab: Path) -> None:
    def ping(src: str, dst_ip: str) -> bool:
        return sh(src, f"ping -c 1 -W 1 {dst_ip}", check=False).returncode == 0

    s1, s2 = student(1), student(2)
    assert not ping(s1[1], s2[2]), "student01 reached student02"
    assert not ping(s2[1], s1[2]), "student02 reached student01"
    assert not ping(s1[1], f"{BASE}.1.10"), "a student reached the teacher"
    assert ping(TEACHER, s2[2]), "the teacher cannot reach student02"
    assert ping(TEACHER, s1[2]), "the teacher cannot reach student01"


def test_class_snapshot_and_restore_bring_back_a_deleted_file_and_leave_admin_alone(
        lab: Path) -> None:
    servers = [student(n)[1] for n in range(1, 7)]
    for name in [*servers, TEACHER]:
        sh(name, "echo 'exercise 1' > /root/work.txt")
    out = make(lab, "snapshot", "NAME=pre-lab", f"DOMAIN={TEMPLATE}")
    assert "create pre-lab: 6 of 6 instances changed, 6 domains" in out, out
    assert all("pre-lab" in snapshots(s) for s in servers)
    assert snapshots(TEACHER) == set()
    for name in [*servers, TEACHER]:
        sh(name, "rm /root/work.txt")
    out = make(lab, "restore", "NAME=pre-lab", f"DOMAIN={TEMPLATE}*")
    assert "restore pre-lab: 6 of 6 instances changed, 6 domains" in out, out
    for n in range(1, 7):
        domain, server, _ = student(n)
        assert re.search(rf"{domain}\s+{server}\s+restored", out), out
        assert read(server, "/root/work.txt") == "exercise 1\n", server
    assert TEACHER not in out, out
    assert sh(TEACHER, "test -e /root/work.txt", check=False).returncode == 1
    assert all(inst["status"] == "Running" for inst in ours().values())


def test_class_backup_gives_one_verified_archive_per_student(
        lab: Path, tmp_path: Path) -> None:
    """`make backup DOMAIN=t18s*` (ADR-087): one archive per student domain, each with its
    own server, none of the teacher's; each passes backup-verify. Then the class put back
    in one command: `make restore-backup FILE='<dir>/t18s*' FORCE=1` brings back each
    student's deleted work and leaves the teacher alone."""
    for n in range(1, 7):
        sh(student(n)[1], f"echo 'handed in by {n}' > /root/handed-in.txt")
    out = make(lab, "backup", f"DOMAIN={TEMPLATE}*", f"OUT={tmp_path}", "SNAPSHOTS=0")
    archives = sorted(tmp_path.glob("*.anklume-backup"))
    assert [a.name.split("-")[0] for a in archives] == [student(n)[0] for n in range(1, 7)], out
    assert not any(ADMIN in a.name for a in archives)
    for n, path in enumerate(archives, start=1):
        verified = make(lab, "backup-verify", f"FILE={path}")
        assert f"{path}: good:" in verified and student(n)[1] in verified, verified
        assert TEACHER not in verified
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]

    for n in range(1, 7):
        sh(student(n)[1], "rm /root/handed-in.txt")
    sh(TEACHER, "echo 'teacher notes' > /root/notes.txt")
    out = make(lab, "restore-backup", f"FILE={tmp_path}/{TEMPLATE}*", "FORCE=1")
    for n in range(1, 7):
        domain, server, ip = student(n)
        assert f"instance(s) of domain {domain} restored ({server})" in out, out
        assert read(server, "/root/handed-in.txt") == f"handed in by {n}\n", server
        assert ours()[server]["devices"]["eth0"]["ipv4.address"] == ip, server
    assert read(TEACHER, "/root/notes.txt") == "teacher notes\n"


def test_a_selector_that_matches_nothing_is_refused(lab: Path) -> None:
    rc, out = lab_make(lab, "snapshot", "NAME=x", "DOMAIN=t18z*")
    assert rc != 0
    assert "unknown domain DOMAIN=t18z*" in out, out


def test_count_lowered_to_four_reports_two_orphan_domains_and_touches_no_other(
        lab: Path) -> None:
    before = {n: ours()[student(n)[1]] for n in range(1, 5)}
    write(lab, 4)
    out = make(lab, "sync")
    for n in (5, 6):
        assert f"orphan: group_vars/{TEMPLATE}0{n}.yml (domain {TEMPLATE}0{n}" in out, out
    plan = make(lab, "plan")
    for n in (5, 6):
        domain, server, _ = student(n)
        assert f"plan: ? instance {server}" in plan, plan
        assert f"plan: ? project {domain}" in plan, plan
        assert f"plan: ? network net-{domain}" in plan, plan
    assert plan.rstrip().endswith(
        "plan: 0 to create, 0 to change, 0 to remove, 6 orphans (PRUNE=1 removes)"), plan
    out = make(lab, "apply", "TAGS=infra")
    # Only the isolation rules change (two bridges fewer); no Incus object does.
    assert "apply: 0 created, 0 changed, 0 removed, 6 orphans (PRUNE=1 removes)" in out, out
    now = ours()
    for n, inst in before.items():
        server = student(n)[1]
        assert now[server]["created_at"] == inst["created_at"], server
        assert now[server]["last_used_at"] == inst["last_used_at"], server
        assert read(server, "/root/work.txt") == "exercise 1\n", server
    assert {student(5)[1], student(6)[1]} <= set(now)
    make(lab, "apply", "TAGS=infra", "PRUNE=1")
    assert set(ours()) == {TEACHER} | {student(n)[1] for n in range(1, 5)}


def test_destroy_of_the_class_leaves_the_admin_domain(lab: Path) -> None:
    out = make(lab, "destroy", f"DOMAIN={TEMPLATE}")
    removed = set(re.findall(r"^apply: - instance (\S+)$", out, re.MULTILINE))
    assert removed == {student(n)[1] for n in range(1, 5)}, out
    assert set(ours()) == {TEACHER}
    assert ours()[TEACHER]["status"] == "Running"
    projects = {p["name"] for p in incus_query("/1.0/projects?recursion=1")}
    assert ADMIN in projects and not any(p.startswith(TEMPLATE) for p in projects)
