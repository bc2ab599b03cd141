"""How `make test` spreads the integration modules over its workers (ADR-094).

`--dist loadfile` gives a worker a whole module at a time. pytest-xdist hands them out by
number of tests, so a long module with few tests (test_scale: 5 tests, 5 to 7 minutes)
could come last and leave one worker running it alone while the other had finished. Here
the modules go out longest first (in the order they took in a whole `make test`; an
unlisted one counts as short), and the modules that share the namespace daemons' bridge
form one unit that one worker runs one after the other, so they need not wait for the
host-wide phase.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

# Each starts incusd in a network namespace joined to the host bridge anklume-rl
# (tests/netns_daemons.py, scripts/incus-netns.sh): they must never run side by side.
NETNS_DAEMONS = ("test_backup", "test_cluster", "test_remote")
NETNS_UNIT = "tests/integration/netns-daemons"

# The long units, longest first, as they took in the integration phase of a whole `make test`
# on a 2-core machine (2026-12-07: 250 to 450 s for the first three, 100 to 300 s for the
# rest); refresh when a module grows. The first two go out side by side and slow each other
# down: beside test_scale (which writes about 20 GiB on the dir pool), test_llm_stack took
# 483 s instead of 300, and the netns unit's test_backup 454 s instead of 245 (either pairing
# gave the same integration phase, 2,031 s and about 2,100 s).
LONGEST_FIRST = (
    "test_scale", "test_llm_stack", "netns-daemons", "test_scope_targets", "test_molecule",
    "test_class", "test_user_path", "test_disposables", "test_egress", "test_gateway_roles",
    "test_gui", "test_firewall_vm", "test_admin_controller", "test_provision",
    "test_reconcile", "test_snapshot", "test_verbs", "test_operations", "test_ownership",
)


def module(nodeid: str) -> str:
    """test_x for tests/integration/test_x.py::test_y[param]."""
    return PurePosixPath(nodeid.split("::", 1)[0]).stem


def unit(nodeid: str) -> str:
    """The work unit of a test: its module's file, or the netns daemons' one unit."""
    return NETNS_UNIT if module(nodeid) in NETNS_DAEMONS else nodeid.split("::", 1)[0]


def weight(nodeid: str) -> int:
    """Higher for a unit that goes out earlier; 0 for a short one (not listed)."""
    name = PurePosixPath(unit(nodeid)).stem
    return len(LONGEST_FIRST) - LONGEST_FIRST.index(name) if name in LONGEST_FIRST else 0


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
