"""The order `make test` hands the integration modules to its workers (tests/schedule.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import schedule

pytestmark = pytest.mark.unit

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
MODULES = {p.stem for p in INTEGRATION.glob("test_*.py")}


def items(*nodeids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_every_weighed_module_exists() -> None:
    """A renamed or removed module would silently lose its place at the front."""
    assert set(schedule.LONGEST_FIRST) - {"netns-daemons"} <= MODULES
    assert len(set(schedule.LONGEST_FIRST)) == len(schedule.LONGEST_FIRST)
    assert set(schedule.NETNS_DAEMONS) <= MODULES


def test_the_netns_modules_are_one_unit_and_the_rest_one_per_file() -> None:
    units = {schedule.unit(f"tests/integration/{m}.py::test_x") for m in schedule.NETNS_DAEMONS}
    assert units == {schedule.NETNS_UNIT}
    assert schedule.unit("tests/integration/test_gui.py::test_x[a::b]") == \
        "tests/integration/test_gui.py"


def test_longest_first_keeps_each_module_whole_and_in_file_order() -> None:
    collected = items(
        "tests/integration/test_admin_controller.py::test_a",
        "tests/integration/test_backup.py::test_b1",
        "tests/integration/test_backup.py::test_b2",
        "tests/integration/test_cluster.py::test_c",
        "tests/integration/test_foundation.py::test_f",
        "tests/integration/test_scale.py::test_s1",
        "tests/integration/test_scale.py::test_s2",
        "tests/integration/test_remote.py::test_r",
    )
    schedule.longest_first(collected)  # type: ignore[arg-type]
    assert [i.nodeid.split("/")[-1] for i in collected] == [
        "test_scale.py::test_s1", "test_scale.py::test_s2",
        "test_backup.py::test_b1", "test_backup.py::test_b2", "test_cluster.py::test_c",
        "test_remote.py::test_r",
        "test_admin_controller.py::test_a",
        "test_foundation.py::test_f",
    ]
