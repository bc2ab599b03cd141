"""Provisioning through `make apply` (Phase 3): one apply creates and provisions.

A throw-away AnKLuMe tree (owner ``t5prov``, domain ``t5a``, 10.120.1.0/24) links the
repository's Makefile, site.yml, roles and plugins, so that ``make apply`` there is the real
path, on the lab's own objects only. The containers have no internet: everything the roles
install is in the image or comes from the host (wheelhouse, collection tarball, incus client).

Own lab: its tests read the output of the lab's own cold and second apply of base_system and
admin_bootstrap (timezone Europe/Paris), then drift files inside both machines, restart the
admin machine and run FULL=1; no other lab provisions these roles or would take that drift.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.incus_helpers import (
    REPO,
    delete_by_prefix,
    exec_read,
    lab_make,
    lab_tree,
    query,
    recap,
    run,
)

OWNER = "t5prov"
DOMAIN = "t5a"
ADMIN = "t5-prov-adm"
BASE = "t5-prov-base"
TIMEZONE = "Europe/Paris"
NFT_TABLE = "anklumet5a"

INFRA = {
    "project_name": OWNER,
    "global": {
        "base_subnet": "10.120",
        "default_os_image": "anklume/debian-12",
        "admin_domain": DOMAIN,
    },
    "domains": {
        DOMAIN: {
            "description": "provisioning test",
            "subnet_id": 1,
            "ephemeral": True,
            "machines": {
                ADMIN: {
                    "type": "lxc",
                    "ip": "10.120.1.10",
                    "roles": ["base_system", "admin_bootstrap"],
                },
                BASE: {"type": "lxc", "ip": "10.120.1.11", "roles": ["base_system"]},
            },
        }
    },
}


def cleanup() -> None:
    delete_by_prefix("t5-prov")
    delete_by_prefix(DOMAIN)
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, check=False)


def make(root: Path, *args: str, timeout: float = 420) -> str:
    rc, out = lab_make(root, *args, timeout=timeout)
    assert rc == 0, f"make {' '.join(args)} failed ({rc}):\n{out}"
    return out


def changed_tasks(output: str) -> list[str]:
    """'TASK name: host' for every task that reported a change."""
    out, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: ["):
            out.append(f"{task}: {line}")
    return out


def inside(name: str, *cmd: str) -> str:
    """A read inside the instance, asked again when Incus loses its answer."""
    return exec_read(name, DOMAIN, *cmd)


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = lab_tree(tmp_path_factory.mktemp("provision"))
    (root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
    cleanup()
    try:
        make(root, "sync")
        # Hand-written variables beside the managed section, as a user would add them. The
        # wheelhouse cache is shared with the repository so that PyPI is reached once.
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(
            allvars.read_text()
            + f"base_system_timezone: {TIMEZONE}\n"
            + f"admin_bootstrap_cache_dir: {REPO / '.cache' / 'admin_bootstrap'}\n"
            # The isolation role must never rewrite the real `inet anklume` table.
            + f"incus_nftables_table: {NFT_TABLE}\n"
        )
        first = make(root, "apply")
        second = make(root, "apply")
        yield {"first": first, "second": second, "root": str(root)}
    finally:
        cleanup()


def test_one_apply_creates_and_provisions_every_machine(lab: dict[str, str]) -> None:
    changed = recap(lab["first"])
    assert changed.get(ADMIN, 0) > 0 and changed.get(BASE, 0) > 0, lab["first"]
    projects = {p["name"] for p in query("/1.0/projects?recursion=1")}  # type: ignore[union-attr]
    assert DOMAIN in projects
    names = query(f"/1.0/instances?project={DOMAIN}")
    assert sorted(str(n).rsplit("/", 1)[-1].split("?")[0] for n in names) == sorted([ADMIN, BASE])  # type: ignore[union-attr]


def test_second_apply_reports_zero_changed(lab: dict[str, str]) -> None:
    changed = recap(lab["second"])
    assert changed and set(changed.values()) == {0}, changed_tasks(lab["second"])


def test_base_packages_are_installed(lab: dict[str, str]) -> None:
    defaults = yaml.safe_load((REPO / "roles/base_system/defaults/main.yml").read_text())
    for name in (ADMIN, BASE):
        out = inside(
            name,
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${db:Status-Status}\n",
            *defaults["base_system_packages"],
        )
        status = dict(line.split() for line in out.splitlines())
        assert status == {p: "installed" for p in defaults["base_system_packages"]}, out


def test_locale_is_generated_and_default(lab: dict[str, str]) -> None:
    for name in (ADMIN, BASE):
        assert "en_US.utf8" in inside(name, "locale", "-a").split()
        # The settings, not the file's bytes: update-locale's comment line may stay.
        settings = [ln for ln in inside(name, "cat", "/etc/default/locale").splitlines()
                    if ln.strip() and not ln.startswith("#")]
        assert settings == ["LANG=en_US.UTF-8"]


def test_timezone_is_set(lab: dict[str, str]) -> None:
    for name in (ADMIN, BASE):
        assert inside(name, "cat", "/etc/timezone").strip() == TIMEZONE
        assert inside(name, "readlink", "/etc/localtime").strip().endswith(TIMEZONE)
        assert inside(name, "date", "+%Z").strip() in {"CET", "CEST"}


def test_admin_has_ansible_git_and_the_incus_client(lab: dict[str, str]) -> None:
    defaults = yaml.safe_load((REPO / "roles/admin_bootstrap/defaults/main.yml").read_text())
    version = defaults["admin_bootstrap_ansible_version"]
    assert f"core {version}" in inside(ADMIN, "ansible", "--version")
    # The incus connection plugin came with the collection tarball from the host.
    assert "community.general.incus" in inside(ADMIN, "ansible-doc", "-t", "connection", "-l")
    assert inside(ADMIN, "git", "--version").startswith("git version")
    host_version = run(["incus", "--version"]).strip()
    assert inside(ADMIN, "incus", "--version").strip() == host_version
    # Only the admin machine gets the admin tools.
    probe = subprocess.run(
        ["incus", "exec", BASE, "--project", DOMAIN, "--", "test", "-e", "/usr/local/bin/ansible"],
        check=False,
    )
    assert probe.returncode != 0


def test_admin_controls_the_host_incus_with_a_plain_client_after_a_restart(
    lab: dict[str, str],
) -> None:
    """Phase 2b: `incus list` in the admin machine reaches the host, restart included."""
    assert ADMIN in inside(ADMIN, "incus", "list", "--project", DOMAIN, "-f", "csv", "-c", "n")
    run(["incus", "restart", ADMIN, "--project", DOMAIN])
    listed = ""
    for _ in range(40):  # the proxy device re-creates the socket as the instance starts
        probe = subprocess.run(
            [
                "incus",
                "exec",
                ADMIN,
                "--project",
                DOMAIN,
                "--",
                "incus",
                "list",
                "--project",
                DOMAIN,
                "-f",
                "csv",
                "-c",
                "n",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        listed = probe.stdout
        if probe.returncode == 0:
            break
        time.sleep(0.5)
    assert BASE in listed and ADMIN in listed, listed


# ADR-058: each role reads its state in one probe and converges only what drifted.
DRIFT = {
    BASE: [
        "echo Etc/UTC > /etc/timezone",
        "ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime",
        "chmod 0600 /etc/default/locale",
    ],
    ADMIN: [
        "rm -f /usr/local/bin/ansible-doc /var/lib/incus/unix.socket",
        "chmod 0700 /var/lib/incus",
        "printf x >> /usr/local/bin/incus",
        "printf ' ' >> /usr/share/ansible/collections/ansible_collections/community/general/"
        "MANIFEST.json",
    ],
}


def test_a_no_op_apply_runs_one_probe_per_host_and_no_role_task(
        lab: dict[str, str]) -> None:
    """ADR-078, ADR-082: every role's probe of every host in one task; a role where nothing
    drifted is not included at all."""
    out = lab["second"]
    assert out.count("TASK [Check every instance is declared, running and booted, and read "
                     "what its roles manage]") == 1
    assert "TASK [Read what each of the instance's roles manages" not in out, out
    assert "TASK [base_system :" not in out, out
    assert "TASK [admin_bootstrap :" not in out, out


def test_drift_inside_an_instance_is_said_and_repaired(lab: dict[str, str]) -> None:
    root = Path(lab["root"])
    for name, commands in DRIFT.items():
        run(["incus", "exec", name, "--project", DOMAIN, "--", "sh", "-ec", "; ".join(commands)])
    out = make(root, "apply")
    # Fragments of the "Say what drifted" lines (the YAML output quotes and folds them).
    for line in ("/etc/timezone: no line", "/etc/localtime points at /usr/share/zoneinfo/Etc/UTC",
                 "/etc/default/locale: mode is 0600, not 0644",
                 "/usr/local/bin/ansible-doc is not a link",
                 "/var/lib/incus/unix.socket is not a link",
                 "/var/lib/incus: mode is 0700, not 0711", "/usr/local/bin/incus: content differs",
                 "community/general/MANIFEST.json:"):
        assert line in out, out
    assert inside(BASE, "cat", "/etc/timezone").strip() == TIMEZONE
    assert inside(BASE, "readlink", "/etc/localtime").strip().endswith(TIMEZONE)
    assert inside(BASE, "stat", "-c", "%a", "/etc/default/locale").strip() == "644"
    assert inside(ADMIN, "readlink", "/usr/local/bin/ansible-doc").strip().endswith("/ansible-doc")
    assert inside(ADMIN, "stat", "-c", "%a", "/var/lib/incus").strip() == "711"
    assert inside(ADMIN, "incus", "--version").strip() == run(["incus", "--version"]).strip()
    assert "community.general" in inside(ADMIN, "ansible-galaxy", "collection", "list")
    again = make(root, "apply")
    changed = recap(again)
    assert changed and set(changed.values()) == {0}, changed_tasks(again)


def test_full_runs_every_task_and_changes_nothing(lab: dict[str, str]) -> None:
    out = make(Path(lab["root"]), "apply", "FULL=1", "TAGS=provision")
    assert "a full run was asked for" in out, out
    assert "TASK [base_system : Install the base packages" in out, out
    changed = recap(out)
    assert changed and set(changed.values()) == {0}, changed_tasks(out)
