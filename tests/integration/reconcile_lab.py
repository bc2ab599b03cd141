"""A throw-away AnKLuMe tree for the reconciliation tests (owner t4test, 10.140.x).

The lab is a temp directory holding infra.yml and the generated tree, with the repository's
site.yml, ansible.cfg, roles/, plugins/, scripts/, Makefile and .venv linked in, so that
`make apply` there behaves exactly as in the repository but on the lab's own objects.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.incus_helpers import lab_make, lab_tree

OWNER = "t4test"
PREFIX = "t4"
BASE = "10.140"
NFT_TABLE = "anklumet4"


def incus_query(path: str, method: str = "GET", data: Any = None) -> Any:
    cmd = ["incus", "query", "-X", method, "--wait"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    out = subprocess.run([*cmd, path], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else None


def all_instances() -> dict[tuple[str, str], dict[str, Any]]:
    items = incus_query("/1.0/instances?all-projects=true&recursion=2") or []
    return {(i["project"], i["name"]): i for i in items}


def ipv4(inst: dict[str, Any]) -> list[str]:
    net = (inst.get("state") or {}).get("network") or {}
    return [a["address"] for a in net.get("eth0", {}).get("addresses", [])
            if a["family"] == "inet"]


def infra(domains: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "default_user": "root",
                   "admin_domain": f"{PREFIX}a"},
        "domains": domains,
    }


def four_domains() -> dict[str, dict[str, Any]]:
    """The shipped infra.yml shape: four domains, one machine each at .10."""
    names = {"a": ("ansible", {"security.nesting": "true"}), "b": ("desktop", {}),
             "c": ("dev", {}), "d": ("llm", {})}
    out = {}
    for i, (letter, (machine, config)) in enumerate(names.items()):
        out[f"{PREFIX}{letter}"] = {
            "description": f"test domain {letter}", "subnet_id": i, "ephemeral": False,
            "machines": {f"{PREFIX}{letter}-{machine}": {
                "type": "lxc", "ip": f"{BASE}.{i}.10", **({"config": config} if config else {}),
            }},
        }
    return out


def cleanup(prefix: str = PREFIX, nft_table: str = NFT_TABLE) -> None:
    """Delete every object of ours, also leftovers of an interrupted run (by prefix/owner)."""
    for (project, name), inst in all_instances().items():
        cfg = inst.get("config") or {}
        if not project.startswith(prefix):
            continue
        q = f"?project={project}"
        if cfg.get("security.protection.delete") == "true":
            incus_query(f"/1.0/instances/{name}{q}", "PATCH",
                        {"config": {"security.protection.delete": "false"}})
        subprocess.run(["incus", "delete", "--force", "--project", project, name],
                       capture_output=True, check=False)
    for prof in incus_query("/1.0/profiles?all-projects=true&recursion=1") or []:
        if prof["project"].startswith(prefix) and prof["name"] != "default":
            incus_query(f"/1.0/profiles/{prof['name']}?project={prof['project']}", "DELETE")
    for proj in incus_query("/1.0/projects?recursion=1") or []:
        if proj["name"].startswith(prefix) and proj["name"] != "default":
            incus_query(f"/1.0/projects/{proj['name']}", "DELETE")
    for net in incus_query("/1.0/networks?recursion=1") or []:
        if net["name"].startswith(f"net-{prefix}"):
            # Right after its instances went, a bridge can still have vanishing veths.
            for attempt in range(5):
                try:
                    incus_query(f"/1.0/networks/{net['name']}", "DELETE")
                    break
                except subprocess.CalledProcessError:
                    if attempt == 4:
                        raise
                    time.sleep(1)
    if shutil.which("nft"):
        subprocess.run(["nft", "delete", "table", "inet", nft_table],
                       capture_output=True, check=False)


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)
        self.domains = four_domains()

    def write(self) -> None:
        (self.root / "infra.yml").write_text(yaml.safe_dump(infra(self.domains),
                                                              sort_keys=False))
        self.make("sync")
        # Hand-written, outside the managed section: the isolation role works on a table of
        # the lab's own so that it never rewrites the real `inet anklume` table.
        allvars = self.root / "group_vars" / "all.yml"
        text = allvars.read_text()
        if "incus_nftables_table" not in text:
            allvars.write_text(text + f"incus_nftables_table: {NFT_TABLE}\n")

    def make(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        rc, out = lab_make(self.root, *args, timeout=timeout)
        if check and rc != 0:
            raise AssertionError(f"make {' '.join(args)} failed ({rc}):\n{out}")
        return out

    def start_make(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                                cwd=self.root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True)

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def summary(output: str, label: str = "plan") -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith(f"{label}: ") and "orphans" in ln]
    assert lines, f"no {label} summary in:\n{output}"
    return lines[-1]


def wait_for(predicate: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
