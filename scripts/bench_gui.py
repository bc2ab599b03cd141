#!/usr/bin/env python3
"""`make bench` part: how soon a window of `make gui` is mapped on the desktop (ADR-091),
cold (no session: the proxy device, the xpra server in the machine and the host client all
start) and warm (a second app in a running session).

A throw-away lab (project t29bench, domain t29bx on 10.136.9.0/24, one `gui: true` machine
from the gui image) is applied, an Xvfb of its own stands for the desktop, and each figure
is the time from the start of `make gui` to the app's window being visible there
(`xdotool search --onlyvisible`), over BENCH_GUI_RUNS runs (default 3); `make gui-stop`
comes before each cold run. It also prints what a session costs in the machine (its memory
in use, with and without the session). Everything is deleted at the end; the gui image
(built when missing) is kept.
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
DOMAIN, BASE = "t29bx", "10.136"
MACHINE = f"{DOMAIN}-desk"
RUNS = int(os.environ.get("BENCH_GUI_RUNS", "3"))
INFRA = {"project_name": "t29bench", "global": {"base_subnet": BASE, "admin_domain": ""},
         "domains": {DOMAIN: {"subnet_id": 9, "ephemeral": True, "color": "blue",
                              "machines": {MACHINE: {"ip": f"{BASE}.9.10", "gui": True}}}}}


def make(root: Path, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                          cwd=root, capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        sys.exit(f"bench gui: make {' '.join(args)} failed:\n{proc.stdout[-2000:]}"
                 f"{proc.stderr[-2000:]}")


def mapped(root: Path, env: dict[str, str], title: str) -> float:
    """Seconds from the start of `make gui` to the window titled TITLE being visible."""
    started = time.monotonic()
    make(root, env, "gui", f"I={MACHINE}", f"APP=xterm -T {title}")
    deadline = started + 60
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name",
                                f"^\\[{DOMAIN}\\] {title}$"], capture_output=True, text=True,
                               check=False, env=env).stdout.strip()
        if found:
            return time.monotonic() - started
        time.sleep(0.02)
    sys.exit(f"bench gui: no window {title} within 60 s")


def memory() -> float:
    state = json.loads(subprocess.run(
        ["incus", "query", f"/1.0/instances/{MACHINE}/state?project={DOMAIN}"],
        capture_output=True, text=True, check=False).stdout or "{}")
    return float((state.get("memory") or {}).get("usage") or 0) / 2**20


def cleanup(root: Path, env: dict[str, str]) -> None:
    subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "gui-stop",
                    f"I={MACHINE}"], cwd=root, capture_output=True, check=False, env=env)
    subprocess.run(["incus", "delete", "--force", "--project", DOMAIN, MACHINE],
                   capture_output=True, check=False)
    subprocess.run(["incus", "project", "delete", DOMAIN], capture_output=True, check=False)
    subprocess.run(["incus", "network", "delete", f"net-{DOMAIN}"], capture_output=True,
                   check=False)
    shutil.rmtree(root, ignore_errors=True)
    for path in Path("/var/lib/anklume/gui").glob(f"{DOMAIN}.*"):
        path.unlink(missing_ok=True)


def row(name: str, times: list[float]) -> str:
    return (f"  {name:<44} {min(times):>6.2f} {statistics.median(times):>7.2f} "
            f"{max(times):>6.2f}")


def main() -> int:
    if any(shutil.which(t) is None for t in ("xpra", "Xvfb", "xdotool")):
        print("  skipped: needs xpra, xvfb and xdotool on this host")
        return 0
    if subprocess.run(["incus", "image", "info", "anklume/debian-12-gui"],
                      capture_output=True, check=False).returncode:
        subprocess.run(["bash", str(REPO / "scripts" / "build-image-gui.sh")], check=True)
    number = next(n for n in range(70, 99) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": f":{number}"}
    root = Path(tempfile.mkdtemp(prefix="t29bench-"))
    for name in ("site.yml", "ansible.cfg", "roles", "plugins", "collections", "scripts",
                 "Makefile", ".venv", "nftables.yml"):
        (root / name).symlink_to(REPO / name)
    (root / "infra.yml").write_text(yaml.safe_dump(INFRA, sort_keys=False))
    try:
        make(root, env, "apply")
        idle = memory()
        cold, warm = [], []
        for n in range(RUNS):
            make(root, env, "gui-stop", f"I={MACHINE}")
            time.sleep(1)
            cold.append(mapped(root, env, f"cold{n}"))
            warm.append(mapped(root, env, f"warm{n}"))
        busy = memory()
        print(f"  {'seconds from make gui to the window mapped':<44} {'min':>6} {'median':>7} "
              f"{'max':>6}")
        print(row("cold (device, server, client and app start)", cold))
        print(row("warm (a second app, session running)", warm))
        print(f"  the machine uses {idle:.0f} MiB of memory idle, {busy:.0f} MiB with a "
              f"session of {2 * RUNS} xterms")
    finally:
        cleanup(root, env)
        xvfb.terminate()
        xvfb.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
