#!/usr/bin/env python3
"""`make bench` part: what the daily front (anklume/ops, ADR-071) costs a command.

Times, over RUNS runs each, in a throw-away tree (nothing reaches Incus): `make help`, a
refused variable (`make apply NAME=x`) and a second `make apply` stopped by the lock while a
process holds it. Prints min/median/max in seconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anklume.errors import pipe_safe

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_LOCK_RUNS", "10"))
INFRA = "project_name: b27lock\ndomains:\n  b27a:\n    subnet_id: 1\n"
HOLD = ("import sys, time; sys.path.insert(0, {repo!r}); from anklume.ops import lock\n"
        "with lock.held('local', 'b27lock', 'make apply'):\n"
        "    print('held', flush=True); time.sleep(3600)\n")


def _time(root: Path, *args: str, rc: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["make", "-s", "-o", ".venv/.installed", *args], cwd=root,
                          capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != rc:
        sys.exit(f"bench lock: make {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return took


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="b27lock.") as tmp:
        root = Path(tmp)
        for name in ("Makefile", "scripts", ".venv"):
            (root / name).symlink_to(REPO / name)
        (root / "infra.yml").write_text(INFRA)
        holder = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(REPO))],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            rows = [("make help", ("help",), 0),
                    ("make apply NAME=x (refused)", ("apply", "NAME=x"), 2),
                    ("make apply, lock held elsewhere", ("apply",), 2)]
            print(f"{'command':<34}{'min':>8}{'median':>8}{'max':>8}   ({RUNS} runs, s)")
            for label, args, rc in rows:
                times = [_time(root, *args, rc=rc) for _ in range(RUNS)]
                print(f"{label:<34}{min(times):>8.3f}{statistics.median(times):>8.3f}"
                      f"{max(times):>8.3f}")
        finally:
            holder.kill()
            holder.wait()
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
