"""incus_ready asks no `incus exec` of a container that has run longer than the time its
boot is given (ADR-078): the rule on Incus's own instance records, as `incus query`
returns them (`last_used_at` with nanoseconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.anklume.incus.plugins.modules import incus_ready

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 9, 0, 0, tzinfo=UTC)


def record(started: datetime, kind: str = "container", status: str = "Running") -> dict[str, str]:
    return {"type": kind, "status": status,
            "last_used_at": started.strftime("%Y-%m-%dT%H:%M:%S") + ".617246281Z"}


def test_a_container_running_longer_than_the_timeout_needs_no_probe() -> None:
    assert incus_ready.started_long_ago(record(NOW - timedelta(seconds=121)), NOW, 120)


@pytest.mark.parametrize("inst", [
    record(NOW - timedelta(seconds=30)),                        # still within its boot time
    record(NOW - timedelta(hours=2), kind="virtual-machine"),   # a VM's agent may not answer
    record(NOW - timedelta(hours=2), status="Stopped"),
    {"type": "container", "status": "Running", "last_used_at": "garbled"},
    {"type": "container", "status": "Running"},
], ids=["recent", "vm", "stopped", "garbled", "no-date"])
def test_anything_else_is_probed(inst: dict[str, str]) -> None:
    assert not incus_ready.started_long_ago(inst, NOW, 120)
