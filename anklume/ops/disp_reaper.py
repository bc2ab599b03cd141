"""The reaper of disposables (ADR-084): a process `make disp` (and `make apply`, for the
ready pools) starts detached, in a session of its own, so that neither a `kill -9` of the
client nor a closed terminal reaches it.

``watch``: it waits for the client to end, or for the disposable's TTL, and deletes the
disposable then; meanwhile it refills the domain's ready pool and sweeps leftovers.
``refill``: it brings the ready pools of the named domains to their preload.

No systemd unit and no timer: it is a plain process of the controller, so it works the same
on a host without systemd and against a remote Incus. What it cannot cover (the controller
itself stops) the next `make disp`, `make disp-clean` or the TTL check of any of them does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from anklume.ops import disp_live as live
from anklume.ops import disp_pool
from anklume.ops.context import Context
from anklume.ops.instances import address, incus
from anklume.ops.targets import TARGETS

POLL = 0.5


def spawn(ctx: Context, order: dict[str, object]) -> None:
    """Start the reaper with ORDER, detached; its messages go to .cache/anklume/disp/."""
    folder = ctx.root / disp_pool.LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "reaper.log", "a", encoding="utf-8") as log:
        subprocess.Popen([ctx.python, "-m", "anklume.ops.disp_reaper", json.dumps(order)],
                         cwd=ctx.root, env=ctx.env(), stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True)


def watch(ctx: Context, order: dict[str, object]) -> None:
    tree = ctx.tree()
    project, name = str(order["project"]), str(order["name"])
    client, deadline = str(order["client"]), float(str(order["deadline"]))
    # The pool is refilled and leftovers swept beside the watch, which must not wait on them.
    refill = str(order.get("refill") or "")
    threading.Thread(target=_tidy, args=(ctx, project, refill), daemon=True).start()
    while not live.client_gone(client) and time.time() < deadline:
        time.sleep(POLL)
        if not _exists(ctx, project, name):
            return  # the client deleted it at the end, as it does
    live.delete(ctx, tree, project, name)
    print(f"reaper: {name} (project {project}) deleted: "
          f"{'its TTL passed' if time.time() >= deadline else 'its make disp ended'}",
          flush=True)


def _tidy(ctx: Context, project: str, refill: str) -> None:
    tree = ctx.tree()
    try:
        if refill:
            disp_pool.refill(ctx, tree, refill)
        disp_pool.sweep(ctx, tree, project)
    except Exception as exc:  # a detached process: its log is where it speaks
        print(f"reaper: tidying {project}: {exc}", flush=True)


def _exists(ctx: Context, project: str, name: str) -> bool:
    tree = ctx.tree()
    url = address(tree, f"/1.0/instances/{name}?project={project}")
    rc, out = incus(ctx, ["incus", "query", url], timeout=30)
    return rc == 0 or "not found" not in out.lower()


def main(argv: list[str]) -> int:
    order = json.loads(argv[0])
    ctx = Context(TARGETS["disp"], {}, root=Path.cwd())
    try:
        if order["do"] == "watch":
            watch(ctx, order)
        else:
            for domain in order["domains"]:
                disp_pool.refill(ctx, ctx.tree(), str(domain))
    except Exception as exc:  # a detached process: its log is where it speaks
        print(f"reaper: {order.get('do')}: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1:]))
