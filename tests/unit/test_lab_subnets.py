"""Integration modules run side by side (ADR-073): no two may use the same subnets.

Incus refuses a bridge whose subnet overlaps another's, whoever owns it, so two labs on
one range fail each other. Each module's ranges are the ``10.N.M`` (a /24) its files
write, its helper modules included; two modules share none, except the pairs below.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests.schedule import NETNS_DAEMONS

pytestmark = pytest.mark.unit

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
# A module's helper files (their labs are that module's).
HELPERS = {"test_isolation": ["isolation_lab"], "test_reconcile": ["reconcile_lab"]}
# Pairs allowed to share /24s: one unit of `make test`, run one after the other on one worker
# (tests/schedule.py). The namespace daemons' bridge (10.199.0.0/24) is one for all, each
# daemon at its address.
ALONE_TOGETHER = {frozenset(pair) for pair in itertools.combinations(NETNS_DAEMONS, 2)}
SUBNET = re.compile(r"\b10\.(\d{1,3})\.(\d{1,3})\.\d{1,3}\b")
BASE = re.compile(r"""["']10\.(\d{1,3})["']""")


def ranges(module: str) -> set[str]:
    """The /24s a module uses: those it writes whole, and its base_subnet's first 20."""
    found: set[str] = set()
    for name in [module, *HELPERS.get(module, [])]:
        text = (INTEGRATION / f"{name}.py").read_text(encoding="utf-8")
        found |= {f"10.{a}.{b}" for a, b in SUBNET.findall(text)}
        found |= {f"10.{a}.{b}" for a in BASE.findall(text) for b in range(20)}
    return found


MODULES = sorted(p.stem for p in INTEGRATION.glob("test_*.py"))


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(MODULES, 2)),
                         ids=lambda m: m)
def test_two_modules_share_no_subnet(first: str, second: str) -> None:
    if frozenset({first, second}) in ALONE_TOGETHER:
        return
    shared = ranges(first) & ranges(second)
    assert not shared, f"{first} and {second} both use {sorted(shared)[:5]}"


def test_the_scan_finds_the_labs() -> None:
    assert {"10.127.1", "10.127.11"} <= ranges("test_scope_targets")
    assert "10.130.1" in ranges("test_isolation")
