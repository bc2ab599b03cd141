#!/usr/bin/env python3
"""Keep sys-firewall running and healthy (firewall_mode vm, ADR-066).

    firewall_watchdog.py start  --project admin --instance sys-firewall [--interval 2] ...
    firewall_watchdog.py stop   --project admin --instance sys-firewall
    firewall_watchdog.py status --project admin --instance sys-firewall
    firewall_watchdog.py run    ...   (in the foreground: what `start` detaches)

Every INTERVAL seconds it reads the instance's state through the Incus API. Stopped (a
clean `incus stop`, which Incus's own boot.autorestart leaves alone) or frozen: it starts
it. Running: after a grace period from its start, it checks inside that the rules are
loaded and forwarding is on; FAILURES checks in a row restart it. An instance that does not
exist is waited for, never created. Each action is one line in the log file.

`start` is idempotent: a watchdog already running for the same instance with the same
arguments is left alone ("running"), one with other arguments is replaced ("started").
It detaches with setsid, so it outlives the shell (no systemd needed); where systemd is
PID 1 a unit can run `... run` instead. Exit codes: 0 done, 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

# Not provisioned yet (no boot unit): nothing to guard; its interfaces have no address, so
# nothing crosses it. Provisioned: the rules are loaded and forwarding is on.
HEALTH = ('[ ! -e /etc/systemd/system/anklume-firewall.service ] || '
          '{{ nft list table inet {table} >/dev/null && '
          '[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; }}')


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="firewall_watchdog.py")
    p.add_argument("action", choices=["start", "stop", "status", "run"])
    p.add_argument("--project", required=True)
    p.add_argument("--instance", required=True)
    p.add_argument("--remote", default="local")
    p.add_argument("--table", default="anklume")
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=30.0)
    p.add_argument("--failures", type=int, default=3)
    p.add_argument("--run-dir", default="/run/anklume")
    p.add_argument("--log", default="/var/log/anklume/firewall-watchdog.log")
    args = p.parse_args(argv)
    if args.interval <= 0 or args.failures < 1 or args.grace < 0:
        p.error("--interval must be > 0, --failures >= 1, --grace >= 0")
    return args


def pidfile(args: argparse.Namespace) -> Path:
    return Path(args.run_dir) / f"firewall-watchdog-{args.project}-{args.instance}.pid"


def signature(args: argparse.Namespace) -> str:
    """What makes two watchdogs the same: every option but the action."""
    return json.dumps({k: v for k, v in sorted(vars(args).items()) if k != "action"})


def running(args: argparse.Namespace) -> tuple[int, str] | None:
    """(pid, signature) of the live watchdog of this instance, or None."""
    try:
        pid_text, sig = pidfile(args).read_text().split("\n", 1)
        pid = int(pid_text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    return (pid, sig.strip()) if "firewall_watchdog" in cmdline else None


def incus(args: argparse.Namespace, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["incus", *cmd], capture_output=True, text=True, timeout=timeout,
                          check=False)


def target(args: argparse.Namespace) -> str:
    return args.instance if args.remote == "local" else f"{args.remote}:{args.instance}"


def status_of(args: argparse.Namespace) -> str | None:
    url = f"/1.0/instances/{args.instance}/state?project={args.project}"
    if args.remote != "local":
        url = f"{args.remote}:{url}"
    proc = incus(args, "query", url, timeout=30)
    if proc.returncode != 0:
        return None
    return str(json.loads(proc.stdout).get("status") or "")


def healthy(args: argparse.Namespace) -> bool:
    proc = incus(args, "exec", "--project", args.project, target(args), "--", "sh", "-c",
                 HEALTH.format(table=args.table), timeout=20)
    return proc.returncode == 0


class Log:
    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + text + "\n")


def watch(args: argparse.Namespace) -> None:
    log = Log(args.log)
    log(f"watching {args.project}/{args.instance} every {args.interval}s")
    started_at, failures = time.monotonic(), 0
    while True:
        try:
            status = status_of(args)
            if status is None:
                failures = 0  # absent (or Incus away): nothing to restart
            elif status in ("Stopped", "Frozen"):
                action = "start" if status == "Stopped" else "unfreeze"
                proc = incus(args, action, "--project", args.project, target(args))
                log(f"{args.instance} was {status}: {action} "
                    f"{'ok' if proc.returncode == 0 else 'failed: ' + proc.stderr.strip()}")
                started_at, failures = time.monotonic(), 0
            elif status == "Running" and time.monotonic() - started_at >= args.grace:
                if healthy(args):
                    failures = 0
                else:
                    failures += 1
                    log(f"{args.instance} unhealthy ({failures}/{args.failures}): rules not "
                        "loaded or forwarding off")
                    if failures >= args.failures:
                        proc = incus(args, "restart", "--force", "--project", args.project,
                                     target(args))
                        log(f"{args.instance} restarted "
                            f"{'ok' if proc.returncode == 0 else 'failed: ' + proc.stderr.strip()}")
                        started_at, failures = time.monotonic(), 0
        except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
            log(f"check failed: {exc}")
        time.sleep(args.interval)


def start(args: argparse.Namespace) -> str:
    live = running(args)
    if live and live[1] == signature(args):
        return "running"
    if live:
        stop(args)
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, os.path.abspath(__file__), "run",
            *[x for k, v in sorted(vars(args).items()) if k != "action"
              for x in (f"--{k.replace('_', '-')}", str(v))]]
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
        proc = subprocess.Popen(argv, stdin=null_in, stdout=null_out, stderr=null_out,
                                start_new_session=True, cwd="/", close_fds=True)
    pidfile(args).write_text(f"{proc.pid}\n{signature(args)}\n")
    return "started"


def stop(args: argparse.Namespace) -> str:
    live = running(args)
    pidfile(args).unlink(missing_ok=True)
    if not live:
        return "not running"
    os.kill(live[0], signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(live[0], 0)
        except OSError:
            break
        time.sleep(0.1)
    return "stopped"


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.action == "run":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        watch(args)
        return 0
    if args.action == "status":
        live = running(args)
        print(f"running (pid {live[0]})" if live else "not running")
        return 0
    print(start(args) if args.action == "start" else stop(args))
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
