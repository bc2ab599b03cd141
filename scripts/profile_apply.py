#!/usr/bin/env python3
"""Where a no-op `make apply` spends its seconds, against the floor (issue 32).

For each lab named (default: `shipped 4 50`): build it under the bench's own names and
apply it cold, then time RUNS no-op `make apply` with the profiling callback
(scripts/profile/anklume_profile.py) and, side by side on the same inventory, the floor:
`ansible-playbook` of a one-task play, and one bulk read of every instance's state.
Labs: `shipped` is the shipped infra.yml with every role (scripts/bench_noop.py's lab:
b10*, 10.143.x); a number N is N instances without roles (scripts/bench_scale.py's lab:
b19d*, 10.191.x). Prints, per lab, each figure's median and its ratio to the floor, then
the median run's plays, its slowest tasks and, for the provision play, each host's time;
writes the same to .bench/profile.txt and the raw profiles to .bench/profile-<lab>.json.

Usage: scripts/profile_apply.py [LAB ...] [--runs N] [--top N]
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_noop
import bench_scale

REPO = Path(__file__).resolve().parent.parent
CALLBACKS = REPO / "scripts" / "profile"
FLOOR_PLAY = """\
- name: The floor - one task over the same inventory
  hosts: all
  gather_facts: false
  tasks:
    - name: One task
      ansible.builtin.debug: {msg: floor}
      run_once: true
"""


def log(msg: str) -> None:
    print(f"profile: {msg}", file=sys.stderr, flush=True)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"profile: {' '.join(args)} failed in {cwd}:\n{out[-3000:]}")
    return took, out


def build(lab: str, work: Path) -> tuple[Path, Any]:
    """The lab's tree, applied cold, and the function that removes it."""
    if lab == "shipped":
        bench_noop.cleanup()
        root = bench_noop.lab(work / lab, REPO)
        bench_noop.make(root, "apply")
        return root, bench_noop.cleanup
    size = int(lab)
    bench_scale.cleanup()
    root = work / lab
    root.mkdir()
    bench_scale.write_lab(root, size)
    bench_scale.make(root, "apply")
    return root, bench_scale.cleanup


def project_callbacks() -> str:
    """ansible.cfg's callbacks_enabled: the variable that adds the profiler replaces it."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "ansible.cfg")
    return ",".join(c.strip() for c in cfg["defaults"]["callbacks_enabled"].split(","))


def no_op(root: Path, profile: Path) -> float:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANKLUME_PROFILE_OUT": str(profile),
           "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
           "ANSIBLE_CALLBACKS_ENABLED": project_callbacks() + ",anklume_profile"}
    took, out = timed(["make", "--no-print-directory", "-o", ".venv/.installed", "apply"],
                      root, env)
    if bench_scale.changed(out) != 0:
        raise SystemExit(f"profile: a no-op apply in {root} changed something:\n{out[-3000:]}")
    return took


def floor(root: Path) -> tuple[float, float]:
    """One one-task play over the lab's inventory, and one bulk read of every instance."""
    (root / "floor.yml").write_text(FLOOR_PLAY)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(root / "ansible.cfg")}
    play, _ = timed([str(REPO / ".venv" / "bin" / "ansible-playbook"), "floor.yml"], root, env)
    read, _ = timed(["incus", "query", "/1.0/instances?recursion=2&all-projects=true"], root,
                    env)
    return play, read


def summary(lab: str, runs: list[tuple[float, float, float, dict[str, Any]]],
            top: int) -> list[str]:
    noop = statistics.median(r[0] for r in runs)
    play = statistics.median(r[1] for r in runs)
    read = statistics.median(r[2] for r in runs)
    base = play + read
    lines = [f"lab {lab}: median of {len(runs)}",
             f"  floor (one-task play {play:.2f} s + bulk read {read:.3f} s) {base:6.2f} s",
             f"  no-op make apply {noop:28.2f} s  {noop / base:.2f}x the floor"]
    prof = min(runs, key=lambda r: abs(r[0] - noop))[3]
    lines.append(f"  the median run's profile: ansible-playbook {prof['wall']:.2f} s "
                 f"(make and the ops front {noop - prof['wall']:.2f} s)")
    for play_rec in prof["plays"]:
        lines.append(f"    play {play_rec['name']}: {play_rec.get('wall', 0):.2f} s, "
                     f"{len(play_rec['tasks'])} tasks")
    tasks = [(t["wall"], p["name"], t) for p in prof["plays"] for t in p["tasks"]]
    lines.append("    slowest tasks (wall, from its start to the next task's):")
    for wall, _, task in sorted(tasks, key=lambda x: -x[0])[:top]:
        hosts = task["hosts"]
        where = f"{len(hosts)} hosts" if len(hosts) != 1 else "1 host"
        lines.append(f"      {wall:6.3f} s  {task['role'] + ' : ' if task['role'] else ''}"
                     f"{task['name']} ({task['action']}, {where})")
    per_host: dict[str, float] = {}
    for task in (prof["plays"][-1]["tasks"] if len(prof["plays"]) > 1 else []):
        for host, (took, _status) in task["hosts"].items():
            per_host[host] = per_host.get(host, 0.0) + took
    if per_host:
        lines.append("    provision play, each host's summed task time:")
        for host, took in sorted(per_host.items(), key=lambda x: -x[1]):
            lines.append(f"      {took:6.3f} s  {host}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", default=["shipped", "4", "50"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anklume-profile."))
    out_dir = REPO / ".bench"
    out_dir.mkdir(exist_ok=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report = [f"profile: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
              f"{os.cpu_count()} cores, load {load}"]
    try:
        for lab in args.labs:
            log(f"lab {lab}: cold apply (minutes)")
            root, clean = build(lab, work)
            runs = []
            try:
                for i in range(args.runs):
                    profile = work / f"{lab}-{i}.json"
                    took = no_op(root, profile)
                    play, read = floor(root)
                    runs.append((took, play, read, json.loads(profile.read_text())))
                    log(f"lab {lab}: no-op {took:.2f} s, floor {play:.2f} + {read:.3f} s")
            finally:
                clean()
            (out_dir / f"profile-{lab}.json").write_text(json.dumps([r[3] for r in runs]))
            report += summary(lab, runs, args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report) + "\n"
    print(text, end="")
    (out_dir / "profile.txt").write_text(text)


if __name__ == "__main__":
    main()
