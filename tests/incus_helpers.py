"""Small helpers for tests that drive the real Incus daemon.

Every resource a test creates carries a name the test owns (a prefix such as
``t2-``), so a test can find and delete its leftovers from an interrupted
earlier run without touching anything else on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def run(args: Sequence[str], *, check: bool = True, timeout: float = 300, **kw: object) -> str:
    """Run a command, return its stdout; on failure raise with stderr included."""
    proc = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[arg-type]
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(args)}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


# The end of a complete answer from exec_read (a name no command prints).
END_OF_ANSWER = "__anklume_test_answer_end__"


def exec_read(name: str, project: str, *cmd: str, tries: int = 5) -> str:
    """The standard output of a read-only command run in instance NAME. `incus exec` now
    and then answers exit 0 with no output at all (ADR-046: 7 in 500 short commands here,
    seen again by the tests' own reads): the command's output ends with a marker and its
    exit code, and an answer without the marker is asked again (a read is safe to repeat).
    A nonzero exit code fails with the output."""
    script = f'"$@"; rc=$?; printf "{END_OF_ANSWER}%d\\n" "$rc"'
    argv = ["incus", "exec", name, "--project", project, "--", "sh", "-c", script, "sh", *cmd]
    for _ in range(tries):
        body, marker, code = run(argv).rpartition(END_OF_ANSWER)
        if marker:
            assert code.strip() == "0", f"{' '.join(cmd)} in {name} exited {code.strip()}:\n{body}"
            return body
        time.sleep(0.5)
    raise AssertionError(f"no complete answer from {name} after {tries} tries: {' '.join(cmd)}")


def incus_available() -> str | None:
    """Return None when the daemon answers, else the reason it does not."""
    if shutil.which("incus") is None:
        return "the incus client is not installed (run: make host)"
    proc = subprocess.run(
        ["incus", "query", "/1.0"], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        return f"the Incus daemon does not answer: {proc.stderr.strip()} (run: make host)"
    return None


def create_network(name: str, *config: str) -> None:
    """``incus network create NAME CONFIG...`` through incus_network's own retry, so a
    create that trips on another lab's vanishing veth is tried again (ADR-073). Imported
    here, not above: the bench scripts use these helpers without the collection's path."""
    from ansible_collections.anklume.incus.plugins.module_utils.incus_client import IncusError
    from ansible_collections.anklume.incus.plugins.modules.incus_network import Networks

    def create() -> None:
        proc = subprocess.run(["incus", "network", "create", name, *config],
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise IncusError(f"incus network create {name} failed: {proc.stderr.strip()}")

    def exists() -> bool:
        return subprocess.run(["incus", "network", "show", name], capture_output=True,
                              timeout=120, check=False).returncode == 0

    Networks.retry_vanishing_veths(create, done=exists)


def image_exists(alias: str) -> bool:
    proc = subprocess.run(
        ["incus", "image", "info", alias], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode == 0


def query(path: str, method: str = "GET", data: object | None = None) -> object:
    """Call the Incus REST API through the CLI and decode the JSON answer."""
    args = ["incus", "query", "-X", method]
    if data is not None:
        args += ["-d", json.dumps(data)]
    out = run([*args, path])
    return json.loads(out) if out.strip() else None


def instances(project: str = "default") -> list[dict[str, object]]:
    result = query(f"/1.0/instances?project={project}&recursion=1")
    assert isinstance(result, list)
    return result


def delete_by_prefix(prefix: str) -> None:
    """Delete instances (all projects), projects and networks named with ``prefix``.

    Tolerates objects that are already gone, so it is safe before and after a test.
    """
    all_instances = query("/1.0/instances?all-projects=true&recursion=1")
    assert isinstance(all_instances, list)
    for inst in all_instances:
        if str(inst["name"]).startswith(prefix):
            project = str(inst.get("project", "default"))
            # Protection is the daemon's guard; tests own these, so lift it first.
            run(
                [
                    "incus",
                    "config",
                    "unset",
                    str(inst["name"]),
                    "security.protection.delete",
                    "--project",
                    project,
                ],
                check=False,
            )
            run(
                ["incus", "delete", "--force", str(inst["name"]), "--project", project], check=False
            )
    projects = query("/1.0/projects?recursion=1")
    assert isinstance(projects, list)
    for proj in projects:
        name = str(proj["name"])
        if name.startswith(prefix):
            for profile in query(f"/1.0/profiles?project={name}") or []:  # type: ignore[union-attr]
                pname = str(profile).rsplit("/", 1)[-1].split("?")[0]
                if pname != "default":
                    run(["incus", "profile", "delete", pname, "--project", name], check=False)
            run(["incus", "project", "delete", name], check=False)
    networks = query("/1.0/networks?recursion=1")
    assert isinstance(networks, list)
    for net in networks:
        name = str(net["name"])
        if net.get("managed") and (name.startswith(prefix) or name.startswith(f"net-{prefix}")):
            run(["incus", "network", "delete", name], check=False)


def ansible_env() -> dict[str, str]:
    """Environment for ansible commands run from tests: the venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", str(VENV_BIN / "python"))
    return env


# The shipped infra.yml as committed: the checkout's own infra.yml is the user's to edit
# (examples/README copies an example over it), so no test reads it; a unit test
# (test_shipped_infra) keeps this copy equal to `git show HEAD:infra.yml`.
SHIPPED_INFRA = REPO / "tests" / "fixtures" / "shipped_infra.yml"
# The shipped infra.yml's domains and the short names a lab gives them (PREFIX + short).
SHIPPED_DOMAINS = {"admin": "adm", "perso": "per", "pro": "pro", "homelab": "lab"}


def shipped_as_lab(prefix: str, owner: str, base: str,
                   roles: list[str] | None = None) -> dict[str, Any]:
    """The shipped infra.yml under a lab's own names: domain admin becomes PREFIX + "adm",
    machine admin-ansible PREFIX + "-adm-ansible", 10.100.x becomes BASE.x, the owner OWNER;
    every machine's roles become ROLES when given."""
    doc = yaml.safe_load(SHIPPED_INFRA.read_text())
    doc["project_name"] = owner
    doc["global"].update(base_subnet=base, admin_domain=prefix + SHIPPED_DOMAINS["admin"])
    domains = {}
    for old, short in SHIPPED_DOMAINS.items():
        dom = doc["domains"][old]
        machines = {}
        for name, machine in dom["machines"].items():
            machine["ip"] = machine["ip"].replace("10.100.", f"{base}.")
            if roles is not None:
                machine["roles"] = list(roles)
            machines[f"{prefix}-{short}-{name.split('-', 1)[1]}"] = machine
        dom["machines"] = machines
        domains[prefix + short] = dom
    doc["domains"] = domains
    return doc


# templates/: an older commit's playbooks read their lookups from it (the bench's "before").
LAB_LINKS = ("site.yml", "snapshot.yml", "ansible.cfg", "roles", "plugins", "collections",
             "scripts", "templates", "Makefile", ".venv")


def lab_tree(root: Path, source: Path = REPO) -> Path:
    """Turn ROOT into a throw-away project tree: the playbooks, roles, plugins, scripts and
    Makefile of SOURCE (the repository, or an older commit's worktree: what it lacks is
    skipped) and the repository's venv linked in, so `make` runs on ROOT's infra.yml."""
    for name in LAB_LINKS:
        target = REPO / name if name == ".venv" else source / name
        if target.exists():
            (root / name).symlink_to(target)
    return root


def lab_make(root: Path, *args: str, timeout: float = 300, **env: str) -> tuple[int, str]:
    """Run `make ARGS` in a lab tree (its .venv already installed); return rc and output."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **env},
    )
    return proc.returncode, proc.stdout + proc.stderr


def recap(output: str) -> dict[str, int]:
    """changed= count of every host in the PLAY RECAP lines."""
    out = {}
    for line in output.splitlines():
        if " : ok=" in line and "changed=" in line:
            out[line.split(":")[0].strip()] = int(line.split("changed=")[1].split()[0])
    return out


def guard_incus(root: Path) -> Path:
    """An `incus` for the front of PATH that only records that it was called, and fails: a
    refusal test puts it there to show the command asked Incus nothing. Returns its folder."""
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    guard = folder / "incus"
    guard.write_text(f"#!/bin/sh\necho \"$@\" >> {root / 'calls'}\nexit 1\n")
    guard.chmod(0o755)
    return folder


def sync_lab(root: Path, doc: dict[str, Any], table: str) -> None:
    """Write DOC as ROOT's infra.yml and sync it, with the lab's own nftables table set
    outside the managed section (kept by later syncs)."""
    (root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, out = lab_make(root, "sync")
    assert rc == 0, out
    allvars = root / "group_vars" / "all.yml"
    if "incus_nftables_table" not in allvars.read_text():
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {table}\n")
