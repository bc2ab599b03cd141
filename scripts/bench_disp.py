#!/usr/bin/env python3
"""`make bench` part: how soon `make disp` runs its command (ADR-084), side by side in one
run: a ready disposable (preload), a new one (none ready), and the same by hand with
`incus launch --ephemeral` + `incus exec` (no address reserved, no reaper, no markers).

A throw-away lab (project t28bench, domain t28bx on 10.134.1.0/24 with `preload: 1` and
one machine) is applied; each figure is the time from the start of the command to the
first line its command prints (`echo first`), over BENCH_DISP_RUNS runs (default 3). It also
prints what a ready one costs: its memory in use and its root disk on the pool. Everything
is deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

REPO = Path(__file__).resolve().parent.parent
DOMAIN, BASE = "t28bx", "10.134"
RUNS = int(os.environ.get("BENCH_DISP_RUNS", "3"))
INFRA = {"project_name": "t28bench", "global": {"base_subnet": BASE, "admin_domain": ""},
         "domains": {DOMAIN: {"subnet_id": 1, "ephemeral": True,
                              "disposables": {"preload": 1},
                              # The infrastructure play needs one host to run on.
                              "machines": {f"{DOMAIN}-box": {"ip": f"{BASE}.1.10"}}}}}


def first_line(argv: list[str], cwd: Path) -> float:
    """Seconds until ARGV prints its first line of standard output (it then runs to its end)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    took = time.monotonic() - started
    proc.communicate()
    if proc.returncode:
        sys.exit(f"bench disp: {' '.join(argv)} exited {proc.returncode}")
    return took


def incus(*args: str) -> str:
    return subprocess.run(["incus", *args], capture_output=True, text=True,
                          check=False).stdout


def ready() -> list[dict]:
    items = json.loads(incus("query", f"/1.0/instances?project={DOMAIN}&recursion=2") or "[]")
    return [i for i in items if i["config"].get("user.anklume.disposable") == "ready"
            and i["status"] == "Running" and (i.get("state") or {}).get("network", {})
            .get("eth0", {}).get("addresses")]


def wait_ready() -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found[0]
        time.sleep(0.5)
    sys.exit("bench disp: no ready disposable within 180 s")


def make(root: Path, *args: str) -> None:
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                          cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"bench disp: make {' '.join(args)} failed:\n{proc.stdout[-2000:]}"
                 f"{proc.stderr[-2000:]}")


def cleanup(root: Path) -> None:
    for item in json.loads(incus("query", f"/1.0/instances?project={DOMAIN}") or "[]") or []:
        incus("delete", "--force", "--project", DOMAIN,
              item.split("?", maxsplit=1)[0].rsplit("/", 1)[1])
    incus("project", "delete", DOMAIN)
    incus("network", "delete", f"net-{DOMAIN}")
    shutil.rmtree(root, ignore_errors=True)


def row(name: str, times: list[float]) -> str:
    return (f"  {name:<44} {min(times):>6.2f} {statistics.median(times):>7.2f} "
            f"{max(times):>6.2f}")


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="t28bench-"))
    for name in ("site.yml", "ansible.cfg", "roles", "plugins", "collections", "scripts",
                 "Makefile", ".venv", "nftables.yml"):
        (root / name).symlink_to(REPO / name)
    (root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
    python = str(REPO / ".venv" / "bin" / "python")
    disp = [python, "scripts/ops.py", "disp"]
    try:
        make(root, "apply")
        os.environ.update({"DOMAIN": DOMAIN, "CMD": "echo first"})
        one = wait_ready()
        memory = one["state"]["memory"]["usage"] / 2**20
        disk = subprocess.run(["du", "-sm", f"/var/lib/incus/storage-pools/default/containers/"
                               f"{DOMAIN}_{one['name']}"], capture_output=True, text=True,
                              check=False).stdout.split("\t")[0] or "?"
        warm, cold, hand = [], [], []
        for n in range(RUNS):
            wait_ready()
            warm.append(first_line(disp, root))
            wait_ready()  # the one made behind it, emptied now: the next one starts anew
            make(root, "disp-clean", f"DOMAIN={DOMAIN}", "FORCE=1")
            cold.append(first_line(disp, root))
            name = f"t28bhand{n}"
            hand.append(first_line(["sh", "-c", f"incus launch anklume/debian-12 {name} "
                                    f"--ephemeral --project {DOMAIN} -q && incus exec {name} "
                                    f"--project {DOMAIN} -- echo first && incus delete -f "
                                    f"--project {DOMAIN} {name}"], root))
        print(f"  {'seconds to the first line of the command':<44} {'min':>6} {'median':>7} "
              f"{'max':>6}")
        print(row("make disp, a ready one (preload: 1)", warm))
        print(row("make disp, a new one (none ready)", cold))
        print(row("incus launch --ephemeral + exec, by hand", hand))
        print(f"  a ready one costs {memory:.0f} MiB of memory in use and {disk} MiB of disk "
              "(dir pool)")
    finally:
        cleanup(root)
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
