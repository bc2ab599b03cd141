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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from anklume.errors import pipe_safe

# The lab helpers the integration tests use: one way to build, run and clean a lab tree.
from tests.incus_helpers import (
    REPO,
    delete_by_prefix,
    lab_make,
    lab_tree,
    recap,
    shipped_as_lab,
)

BEFORE = os.environ.get("BENCH_BEFORE", "dfbd5a6")
GOAL = 6.0
PREFIX, OWNER, BASE, TABLE = "b10", "b10noop", "10.143", "anklumeb10"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def lab(root: Path, source: Path) -> Path:
    """A tree at ROOT running SOURCE's playbooks, roles and generator on the bench's
    infra.yml (the generator too, so an older commit renders what it knew)."""
    root.mkdir(parents=True)
    lab_tree(root, source)
    (root / "anklume").symlink_to(source / "anklume")
    infra = shipped_as_lab(PREFIX, OWNER, BASE)  # every machine and role kept
    (root / "infra.yml").write_text(yaml.safe_dump(infra, sort_keys=False))
    make(root, "sync")
    with (root / "group_vars" / "all.yml").open("a") as allvars:
        # Our own nft table, and the controller cache the user's tree already filled.
        allvars.write(f"incus_nftables_table: {TABLE}\n"
                      f"admin_bootstrap_cache_dir: {REPO / '.cache' / 'admin_bootstrap'}\n")
    return root


def make(root: Path, *args: str) -> str:
    rc, out = lab_make(root, *args, timeout=1800)
    if rc != 0:
        sys.exit(f"bench: make {' '.join(args)} failed in {root}:\n{out[-3000:]}")
    return out


def no_op_seconds(root: Path, runs: int, *args: str) -> float:
    """Median wall seconds of RUNS `make apply ARGS`, each checked to change nothing."""
    times = []
    for _ in range(runs):
        start = time.monotonic()
        out = make(root, "apply", *args)
        times.append(time.monotonic() - start)
        changed = recap(out)
        if not changed or set(changed.values()) != {0}:
            sys.exit(f"bench: a run in {root} changed something:\n{out[-3000:]}")
    log(f"{root.name} {' '.join(args)}: " + " ".join(f"{t:.2f}" for t in times))
    return statistics.median(times)


def cleanup() -> None:
    """Every object of the bench's lab, whatever run left it."""
    delete_by_prefix(PREFIX)
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
    sys.exit(pipe_safe(main))
