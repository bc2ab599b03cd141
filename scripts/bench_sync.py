#!/usr/bin/env python3
"""Time `scripts/generate.py` for 10, 100 and 1000 machines, cold and no-op.

Each case writes a generated infra file into a fresh temp dir, runs the whole
CLI process once on an empty tree (cold) and once more (no-op), and reports
wall time. Goals (issue 32): 1000 machines under 2 s cold, under 0.5 s for a no-op.
Usage: scripts/bench_sync.py [--sizes 10,100,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from anklume.errors import pipe_safe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATE = os.path.join(ROOT, "scripts", "generate.py")
PER_DOMAIN = 150  # hosts .1-.99 and .200-.250 stay outside the default DHCP range


def infra_text(machines: int) -> str:
    lines = ["project_name: bench", "global:", '  base_subnet: "10.100"', "domains:"]
    hosts = [*range(1, 100), *range(200, 251)]
    domain = -1
    for i in range(machines):
        if i % PER_DOMAIN == 0:
            domain += 1
            lines += [f"  d{domain}:", f"    description: bench domain {domain}",
                      f"    subnet_id: {domain}", "    ephemeral: true", "    machines:"]
        host = hosts[i % PER_DOMAIN]
        lines += [
            f"      m{i}:",
            f"        description: bench machine {i}",
            "        type: lxc",
            f'        ip: "10.100.{domain}.{host}"',
            "        config:",
            '          limits.cpu: "2"',
            "        roles: [base_system]",
        ]
    return "\n".join(lines) + "\n"


def timed(infra: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, GENERATE, infra], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"generate.py failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, proc.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown")
    args = ap.parse_args()
    print(f"{'machines':>8} {'files':>6} {'cold s':>8} {'no-op s':>8}  no-op message")
    for n in (int(s) for s in args.sizes.split(",")):
        colds, noops, msg = [], [], ""
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="anklume-bench-") as tmp:
                infra = os.path.join(tmp, "infra.yml")
                with open(infra, "w", encoding="utf-8") as fh:
                    fh.write(infra_text(n))
                cold, _ = timed(infra)
                noop, msg = timed(infra)
                colds.append(cold)
                noops.append(noop)
                files = sum(len(f) for _, _, f in os.walk(tmp)) - 1
        print(f"{n:>8} {files:>6} {min(colds):>8.3f} {min(noops):>8.3f}  {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
