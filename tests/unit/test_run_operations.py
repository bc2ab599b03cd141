"""ADR-022: IncusClient.run_operations, the one way our modules run Incus operations.

What needs no daemon: the bound on operations at a time, the progress lines, every
failure reported after every operation ran, and the parallel check. The operations here
start nothing in Incus (their start() returns no operation id); the lost-operation cases
run on the real daemon in tests/integration/test_operations.py.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from types import ModuleType

import pytest

from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit


def _client() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "anklume_test_run_operations", REPO / "plugins" / "module_utils" / "incus_client.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IC = _client()


class Tracker:
    """start() callables that record how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.count = 0

    def op(self, what: str, fail: bool = False) -> object:
        def start() -> None:
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            time.sleep(0.02)
            with self.lock:
                self.now -= 1
                self.count += 1
            if fail:
                raise IC.IncusError(f"{what}: Instance not found")

        return IC.Operation(what, start=start)


@pytest.mark.parametrize("parallel", [1, 3, 8])
def test_at_most_parallel_operations_run_at_once(parallel: int) -> None:
    t = Tracker()
    IC.IncusClient().run_operations([t.op(f"op {i}") for i in range(20)], parallel)
    assert t.count == 20
    assert 1 <= t.peak <= parallel


def test_a_progress_line_per_batch_on_long_runs() -> None:
    t, lines = Tracker(), []
    IC.IncusClient().run_operations([t.op(f"op {i}") for i in range(10)], 4,
                                    progress=lines.append, label="incus_instance: created")
    assert lines == ["incus_instance: created 4/10", "incus_instance: created 8/10",
                     "incus_instance: created 10/10"]
    lines.clear()
    IC.IncusClient().run_operations([t.op("one"), t.op("two")], 4, progress=lines.append)
    assert lines == []  # one batch: no progress line


def test_every_operation_runs_and_every_failure_is_named() -> None:
    t = Tracker()
    ops = [t.op("creating a", fail=True), t.op("creating b"), t.op("creating c", fail=True)]
    with pytest.raises(IC.IncusError) as err:
        IC.IncusClient().run_operations(ops, 2)
    assert t.count == 3
    assert str(err.value) == ("2 of 3 operations failed: creating a: Instance not found; "
                              "creating c: Instance not found")


@pytest.mark.parametrize("bad", [0, -2, "4"])
def test_parallel_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(IC.IncusError, match="parallel must be a whole number of at least 1"):
        IC.IncusClient().run_operations([], bad)
