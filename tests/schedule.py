"""How `make test` spreads the integration modules over its workers (ADR-094).

`--dist loadfile` gives a worker a whole module at a time. pytest-xdist hands them out by
number of tests, so a long module with few tests (test_scale: 5 tests, 7 minutes) came
last and one worker ran it alone while the other had finished. Here the modules go out
longest first (the seconds a module took in a whole `make test`, rounded; an unlisted one
counts as short), and the modules that share the namespace daemons' bridge form one unit
that one worker runs one after the other, so they need not wait for the host-wide phase.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

# Each starts incusd in a network namespace joined to the host bridge anklume-rl
# (tests/netns_daemons.py, scripts/incus-netns.sh): they must never run side by side.
NETNS_DAEMONS = ("test_backup", "test_cluster", "test_remote")
NETNS_UNIT = "tests/integration/netns-daemons"

# Seconds each long module took in the integration phase of a whole `make test` on a
# 2-core machine beside another module (2026-12-07). Refresh when a module grows: only the
# order matters.
SECONDS = {
    "test_scale": 420, "netns-daemons": 400, "test_llm_stack": 300, "test_scope_targets": 280,
    "test_molecule": 240, "test_class": 220, "test_user_path": 210, "test_disposables": 210,
    "test_egress": 210, "test_gateway_roles": 190, "test_ownership": 190,
    "test_admin_controller": 180, "test_firewall_vm": 170, "test_gui": 160,
    "test_reconcile": 150, "test_provision": 150, "test_snapshot": 140, "test_verbs": 110,
}


def module(nodeid: str) -> str:
    """test_x for tests/integration/test_x.py::test_y[param]."""
    return PurePosixPath(nodeid.split("::", 1)[0]).stem


def unit(nodeid: str) -> str:
    """The work unit of a test: its module's file, or the netns daemons' one unit."""
    return NETNS_UNIT if module(nodeid) in NETNS_DAEMONS else nodeid.split("::", 1)[0]


def weight(nodeid: str) -> int:
    return SECONDS.get(PurePosixPath(unit(nodeid)).stem, 0)


def longest_first(items: list[Any]) -> None:
    """Sort ITEMS (pytest items, in place) by their unit's weight, keeping each unit's
    tests together and in file order (module fixtures are set up once)."""
    first_seen = {}
    for index, item in enumerate(items):
        first_seen.setdefault(unit(item.nodeid), index)
    items.sort(key=lambda item: (-weight(item.nodeid), first_seen[unit(item.nodeid)]))


def scheduler(config: Any, log: Any) -> Any:
    """pytest-xdist's loadfile, with the units above taken in the collected order."""
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit(nodeid)

    config.option.loadscopereorder = False  # keep longest_first's order, not the count's
    return LongestFirst(config, log)
