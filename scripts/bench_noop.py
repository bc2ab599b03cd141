#!/usr/bin/env python3
"""Bench the everyday run: a no-op `make apply` of the shipped infra.yml, provisioning
included (ADR-058), before and after the roles' state probes, on this machine now.

The shipped infra.yml runs under the bench's own names (domains b10adm, b10per, b10pro,
b10lab; 10.143.x; owner b10noop; nft table anklumeb10), every role kept, so the user's own
instances are never touched. Rows:
  before        the same command from commit BENCH_BEFORE (default: the last commit before
                the probes), checked out in a temporary worktree, on the same lab
  after FULL=1  this tree, every provisioning task run (as before the probes)
  after         this tree
Each row is the median of RUNS no-op runs (argument, default 5); each run must report
changed=0 on every host. The lab is created cold first (minutes) and removed at the end.
Usage: scripts/bench_noop.py [RUNS]
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BEFORE = os.environ.get("BENCH_BEFORE", "dfbd5a6")
GOAL = 6.0
OWNER, BASE, TABLE = "b10noop", "10.143", "anklumeb10"
RENAME = {"admin": "b10adm", "perso": "b10per", "pro": "b10pro", "homelab": "b10lab"}
# What a tree needs to run `make apply` (whatever the commit has of them).
LINKS = ("site.yml", "snapshot.yml", "ansible.cfg", "roles", "plugins", "collections",
         "scripts", "templates", "Makefile", "anklume")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def lab_infra() -> dict[str, object]:
    """The shipped infra.yml under the bench's names, every machine and role kept."""
    doc = yaml.safe_load((REPO / "infra.yml").read_text())
    doc["project_name"] = OWNER
    doc["global"].update(base_subnet=BASE, admin_domain=RENAME["admin"])
    domains = {}
    for old, new in RENAME.items():
        dom = doc["domains"][old]
        dom["machines"] = {
            f"b10-{new[3:]}-{name.split('-', 1)[1]}": {
                **machine, "ip": machine["ip"].replace("10.100.", f"{BASE}.")}
            for name, machine in dom["machines"].items()}
        domains[new] = dom
    doc["domains"] = domains
    return doc


def lab(root: Path, source: Path) -> Path:
    """A tree at ROOT running SOURCE's playbooks and roles on the bench's infra.yml."""
    root.mkdir(parents=True)
    for name in LINKS:
        if (source / name).exists():
            (root / name).symlink_to(source / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "infra.yml").write_text(yaml.safe_dump(lab_infra(), sort_keys=False))
    make(root, "sync")
    with (root / "group_vars" / "all.yml").open("a") as allvars:
        # Our own nft table, and the controller cache the user's tree already filled.
        allvars.write(f"incus_nftables_table: {TABLE}\n"
                      f"admin_bootstrap_cache_dir: {REPO / '.cache' / 'admin_bootstrap'}\n")
    return root


def make(root: Path, *args: str) -> str:
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                          cwd=root, capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"bench: make {' '.join(args)} failed in {root}:\n{out[-3000:]}")
    return out


def no_op_seconds(root: Path, runs: int, *args: str) -> float:
    """Median wall seconds of RUNS `make apply ARGS`, each checked to change nothing."""
    times = []
    for _ in range(runs):
        start = time.monotonic()
        out = make(root, "apply", *args)
        times.append(time.monotonic() - start)
        changed = re.findall(r" : ok=\d+\s+changed=(\d+)", out)
        if not changed or set(changed) != {"0"}:
            sys.exit(f"bench: a run in {root} changed something:\n{out[-3000:]}")
    log(f"{root.name} {' '.join(args)}: " + " ".join(f"{t:.2f}" for t in times))
    return statistics.median(times)


def cleanup() -> None:
    """Every object of the bench's lab, whatever run left it."""
    listing = subprocess.run(["incus", "project", "list", "-f", "csv", "-c", "n"],
                             capture_output=True, text=True, check=False).stdout
    for project in (p.split()[0] for p in listing.splitlines()):
        if project.startswith("b10"):
            names = subprocess.run(["incus", "list", "--project", project, "-f", "csv", "-c", "n"],
                                   capture_output=True, text=True, check=False).stdout.split()
            for name in names:
                subprocess.run(["incus", "config", "unset", "--project", project, name,
                                "security.protection.delete"], capture_output=True, check=False)
                subprocess.run(["incus", "delete", "--force", "--project", project, name],
                               capture_output=True, check=False)
            subprocess.run(["incus", "project", "delete", project], capture_output=True,
                           check=False)
    nets = subprocess.run(["incus", "network", "list", "-f", "csv", "-c", "n"],
                          capture_output=True, text=True, check=False).stdout.split()
    for net in nets:
        if net.startswith("net-b10"):
            subprocess.run(["incus", "network", "delete", net], capture_output=True, check=False)
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="anklume-bench-noop."))
    worktree = work / "before-src"
    cleanup()
    try:
        log("cold apply of the shipped infra.yml under the bench's names (minutes)")
        after_lab = lab(work / "after", REPO)
        make(after_lab, "apply")
        before = f"n/a (commit {BEFORE} not in this clone)"
        known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{BEFORE}^{{commit}}"],
                               capture_output=True, check=False).returncode == 0
        if known:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree),
                            BEFORE], capture_output=True, check=True)
            before_lab = lab(work / "before", worktree)
            make(before_lab, "apply")  # converge to what that commit declares
            before = f"{no_op_seconds(before_lab, runs):.1f} s"
            make(after_lab, "apply")  # and back to this tree's state
        full = no_op_seconds(after_lab, runs, "FULL=1")
        after = no_op_seconds(after_lab, runs)
    finally:
        cleanup()
        if worktree.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    rows = [(f"before (commit {BEFORE}, every task runs)", before),
            ("after, FULL=1 (every task runs)", f"{full:.1f} s"),
            ("after (one state probe per role)", f"{after:.1f} s")]
    report = [f"No-op make apply of the shipped infra.yml ({os.cpu_count()} cores; median of "
              f"{runs}; goal < {GOAL:.0f} s)"]
    report += [f"  {name:<44} {value}" for name, value in rows]
    report.append("  goal met" if after < GOAL else "  goal NOT met")
    (REPO / ".bench").mkdir(exist_ok=True)
    (REPO / ".bench" / "noop.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
