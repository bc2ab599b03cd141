"""ADR-022: no Incus operation is lost, on the real daemon (issue 19).

Incus drops a finished operation about 5 s after it ends. The failure mode: start many
operations, then wait on them one after another; a fast one that ended while we waited
on a slow one is gone ("Operation not found") although its work was done. Here the
operations are `exec` runs of `sleep N` in one small container (``t19-ops``, default
project, no network), each leaving a marker file, so their lengths and their true
outcome are known.

Own lab: none (one plain container t19-ops in the default project, no network; the tests call
incus_client's operations API directly and need only a container to exec sleep in).
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.incus_helpers import REPO, delete_by_prefix, run

NAME = "t19-ops"
LONG = 12  # seconds: well past the ~5 s Incus keeps a finished operation


def _client() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "anklume_test_operations", REPO / "plugins" / "module_utils" / "incus_client.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IC = _client()


@pytest.fixture(scope="module")
def box(incus: str) -> Iterator[str]:
    delete_by_prefix(NAME)
    run(["incus", "launch", incus, NAME, "--profile", "default"], timeout=180)
    try:
        yield NAME
    finally:
        delete_by_prefix(NAME)


@pytest.fixture()
def client(box: str) -> object:
    run(["incus", "exec", box, "--", "rm", "-rf", "/var/lib/t19"])
    run(["incus", "exec", box, "--", "mkdir", "/var/lib/t19"])
    return IC.IncusClient()


def marker(tag: str) -> bool:
    """True when the operation `tag` left its marker: its work was done."""
    return subprocess.run(["incus", "exec", NAME, "--", "test", "-e", f"/var/lib/t19/{tag}"],
                          check=False).returncode == 0


def sleeper(tag: str, seconds: float, verify: bool = True) -> object:
    """An exec operation running `sleep SECONDS`, then leaving /var/lib/t19/TAG."""
    return IC.Operation(
        f"running {tag} (sleep {seconds})", f"/1.0/instances/{NAME}/exec", "POST",
        {"command": ["sh", "-c", f"sleep {seconds} && touch /var/lib/t19/{tag}"],
         "wait-for-websocket": False, "interactive": False, "record-output": False},
        verify=(lambda: marker(tag)) if verify else None)


def gone(client: object, op_id: str) -> bool:
    try:
        client.get(f"/1.0/operations/{op_id}")  # type: ignore[attr-defined]
    except IC.IncusError as exc:
        return "not found" in str(exc).lower()
    return False


def forgotten(client: object, op: object) -> object:
    """The same operation, but its start() returns only once Incus has dropped it."""
    def start() -> str:
        op_id = client.start_operation(op.path, op.method, op.data,  # type: ignore[attr-defined]
                                       what=op.what)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 120
        while not gone(client, op_id):
            assert time.monotonic() < deadline, f"Incus still knows operation {op_id}"
            time.sleep(0.5)
        return op_id

    op.start = start  # type: ignore[attr-defined]
    return op


# The worst order for waiting one after the other: the longest first.
WORST = [("slow", LONG), ("s0", 0), ("s1", 0.5), ("s2", 1), ("s3", 2)]


def test_waiting_one_after_the_other_loses_the_fast_ones(client: object) -> None:
    """The failure mode itself, shown on the real daemon: what the old code did."""
    started = [(tag, client.start_operation(sleeper(tag, s).path, "POST",  # type: ignore
                                            sleeper(tag, s).data, what=tag))
               for tag, s in WORST]
    lost = []
    for tag, op_id in started:
        try:
            client.wait_operation(op_id, what=tag)  # type: ignore[attr-defined]
        except IC.OperationGone:
            lost.append(tag)
    assert lost == ["s0", "s1", "s2", "s3"]
    assert all(marker(tag) for tag, _ in WORST)  # yet every one did its work


@pytest.mark.parametrize("parallel", [2, len(WORST)])
def test_run_operations_in_the_worst_order_loses_none(client: object, parallel: int) -> None:
    ops = [sleeper(tag, s) for tag, s in WORST]
    client.run_operations(ops, parallel)  # type: ignore[attr-defined]
    assert client.recovered == 0  # type: ignore[attr-defined]  # none was even dropped
    assert all(marker(tag) for tag, _ in WORST)


def test_a_dropped_operation_reports_its_true_outcome(client: object) -> None:
    ops = [forgotten(client, sleeper("lost-done", 0)), sleeper("other", 1)]
    client.run_operations(ops, 2)  # type: ignore[attr-defined]
    assert client.recovered == 1  # type: ignore[attr-defined]
    assert marker("lost-done") and marker("other")


def test_a_dropped_operation_whose_work_is_missing_is_a_failure(client: object) -> None:
    # Its verify() looks for a marker the command never writes.
    op = forgotten(client, sleeper("wrote-this", 0))
    op.verify = lambda: marker("never-written") or "no /var/lib/t19/never-written"  # type: ignore
    with pytest.raises(IC.IncusError) as err:
        client.run_operations([op], 2)  # type: ignore[attr-defined]
    assert str(err.value) == ("running wrote-this (sleep 0): the operation ended without the "
                              "expected result (no /var/lib/t19/never-written)")


def test_a_dropped_operation_without_verify_is_unknown_not_success(client: object) -> None:
    op = forgotten(client, sleeper("no-verify", 0, verify=False))
    with pytest.raises(IC.IncusError, match="its outcome is unknown"):
        client.run_operations([op], 1)  # type: ignore[attr-defined]


def test_a_real_failure_carries_incus_text_and_the_others_still_run(client: object) -> None:
    bad = IC.Operation("snapshotting a missing instance",
                       "/1.0/instances/t19-ops-missing/snapshots", "POST", {"name": "x"})
    with pytest.raises(IC.IncusError) as err:
        client.run_operations([bad, sleeper("fine", 0)], 2)  # type: ignore[attr-defined]
    assert str(err.value).startswith("1 of 2 operations failed: snapshotting a missing "
                                     "instance: ")
    assert "not found" in str(err.value).lower()
    assert marker("fine")
