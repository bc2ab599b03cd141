"""`make start|stop|restart [DOMAIN=|I=]`: exactly the declared instances in scope, at most
PARALLEL at a time, one line per instance and a count. An instance Incus does not hold is
reported (make apply creates it), never created; one that is not ours is left alone."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from anklume.ops import instances
from anklume.ops.context import Context
from anklume.ops.instances import Live
from anklume.ops.playbooks import parallel
from anklume.ops.tree import Instance, Tree

DEFAULT_PARALLEL = 8
# Seconds a clean shutdown may take before `incus stop` gives up (it fails, and says so).
STOP_TIMEOUT = "60"

# What each action leaves: (the state it wants, the word when done, the word when it was).
WORDS = {"start": ("started", "already running"),
         "stop": ("stopped", "already stopped"),
         "restart": ("restarted", "")}


def _step(action: str, live: Live) -> tuple[list[str], str] | None:
    """The incus verb (with its options) to run and the word it earns; None: nothing to do."""
    done = WORDS[action][0]
    if action == "start":
        return None if live.running else (["start"], done)
    if action == "stop":
        return (["stop", "--timeout", STOP_TIMEOUT], done) if live.running else None
    if live.running:
        return (["restart", "--timeout", STOP_TIMEOUT], done)
    return (["start"], "started (it was stopped)")


def _one(ctx: Context, tree: Tree, action: str, inst: Instance, live: Live | None
         ) -> tuple[str, str]:
    """(outcome, line) for one instance; outcome counts in the summary."""
    if live is None:
        return "missing", f"missing: {instances.missing(tree, inst)}"
    why = live.foreign(tree.owner)
    if why:
        return "not ours", f"left alone: {why}"
    step = _step(action, live)
    if step is None:
        return WORDS[action][1], WORDS[action][1]
    verb, word = step
    rc, out = instances.incus(ctx, instances.argv(tree, inst, verb[0], *verb[1:]))
    if rc != 0:
        return "failed", f"failed: {out or f'incus {verb[0]} exited {rc}'}"
    return word.split(" (")[0], word


def _parallel(ctx: Context) -> int:
    value = parallel(ctx).get("anklume_incus_parallel", DEFAULT_PARALLEL)
    assert isinstance(value, int)
    return value


def _act(action: str) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        width = _parallel(ctx)
        scope = ctx.scope()
        tree = ctx.tree()
        if not scope.hosts:
            print(f"{action}: {', '.join(scope.domains) or 'infra.yml'} declare no instances",
                  file=ctx.out)
            return 0
        current = instances.read(ctx, tree)
        said = threading.Lock()
        counts: Counter[str] = Counter()

        def job(name: str) -> tuple[str, str]:
            inst = tree.instances[name]
            return _one(ctx, tree, action, inst, current.get((inst.project, inst.name)))

        with ThreadPoolExecutor(max_workers=width) as pool:
            futures = {pool.submit(job, name): name for name in scope.hosts}
            for future in as_completed(futures):
                name = futures[future]
                outcome, line = future.result()
                with said:
                    counts[outcome] += 1
                    print(f"{action} {name} ({tree.instances[name].project}): {line}",
                          file=ctx.out, flush=True)
        summary = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        print(f"{action}: {summary}", file=ctx.out)
        bad = counts["missing"] + counts["not ours"] + counts["failed"]
        if counts["missing"]:
            print(f"{action}: an instance infra.yml declares is missing: make apply creates it",
                  file=ctx.err)
        return 1 if bad else 0
    return run


start = _act("start")
stop = _act("stop")
restart = _act("restart")
