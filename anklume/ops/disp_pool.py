"""Keeping disposables tidy (ADR-084): the ready pool of each domain, and the sweep that
deletes what has outlived its `make disp`.

Both run in the detached reaper process (disp_reaper.py), never in the user's way.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anklume.ops import disp_live as live
from anklume.ops.context import Context
from anklume.ops.tree import Tree

LOCKS = Path(".cache") / "anklume" / "disp"


def leftover(d: live.Disposable, now: float) -> str | None:
    """Why a disposable should be gone (one phrase), or None while it serves someone."""
    if d.state != live.USED:
        return None
    if d.expires is not None and now >= d.expires:
        return "its TTL has passed"
    if d.client and live.client_gone(d.client):
        return "its make disp has ended"
    if not d.client and d.status != "Running":
        return "it is stopped"
    return None


def sweep(ctx: Context, tree: Tree, project: str | None = None) -> list[str]:
    """Delete the used disposables nobody is served by any more; their names."""
    now = time.time()
    gone = []
    for d in live.read(ctx, tree, project):
        if leftover(d, now) and live.delete(ctx, tree, d.project, d.name):
            gone.append(d.name)
    return gone


@contextmanager
def held(root: Path, project: str) -> Iterator[bool]:
    """One refill per project at a time on this controller: True when this one holds it."""
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{project}.lock", "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def refill(ctx: Context, tree: Tree, name: str) -> None:
    """Bring domain NAME's ready disposables to its preload: new ones made, surplus ones
    (or ones of another image, or of a domain that no longer allows them) deleted."""
    dom = live.domain_of(tree, name)
    project = tree.project_of(name)
    with held(ctx.root, project) as mine:
        if not mine:
            return
        ready = [d for d in live.read(ctx, tree, project) if d.state == live.READY]
        keep = [d for d in ready if dom is not None and d.config.get(live.IMAGE) == dom.image]
        want = dom.preload if dom is not None else 0
        for d in [*keep[want:], *(d for d in ready if d not in keep)]:
            live.delete(ctx, tree, d.project, d.name)
        for _ in range(want - len(keep[:want])):
            assert dom is not None
            made = live.create(ctx, tree, dom, dom.image, live.READY, None)
            live.wait_address(ctx, tree, project, made, dom.address_of(made))
