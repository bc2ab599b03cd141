"""The bridge create, update and delete retry of incus_network, without a daemon.

Incus 6.0.4 fails a bridge create, update or delete when a veth of any other container vanishes
while it lists the bridge's children (ADR-073). That race cannot be produced on demand,
so these tests drive the retry helper with plain callables standing in for the request.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import IncusError

from tests.unit.fake_incus import module

pytestmark = pytest.mark.unit

NETWORK = module("incus_network")
RACE = ('Failed creating network "net-x": Failed to delete bridge children interfaces: '
        'Failed to run: ip link delete dev veth1a2b: Device "veth1a2b" does not exist')


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(NETWORK.time, "sleep", waits.append)
    return waits


def failing(times: int, message: str = RACE) -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise IncusError(message)
    return calls, call


def test_the_race_is_retried_until_the_request_passes(no_wait: list[float]) -> None:
    calls, call = failing(2)
    NETWORK.Networks.retry_vanishing_veths(call, done=lambda: False)
    assert len(calls) == 3
    assert no_wait == [1, 2]


def test_a_request_that_went_through_despite_the_error_is_not_sent_again() -> None:
    calls, call = failing(1)
    NETWORK.Networks.retry_vanishing_veths(call, done=lambda: True)
    assert len(calls) == 1


def test_the_race_gives_up_after_the_last_try() -> None:
    calls, call = failing(9)
    with pytest.raises(IncusError, match="children interfaces"):
        NETWORK.Networks.retry_vanishing_veths(call, done=lambda: False, tries=3)
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once() -> None:
    calls, call = failing(1, "Network address already in use")
    with pytest.raises(IncusError, match="already in use"):
        NETWORK.Networks.retry_vanishing_veths(call, done=lambda: False)
    assert len(calls) == 1


class RacyClient:
    """Answers a bridge's PUT with the race FAILS times, then applies it; GET reads it."""

    def __init__(self, fails: int) -> None:
        self.fails, self.puts, self.config = fails, 0, {"ipv4.nat": "false"}

    def query(self, path: str, method: str = "GET", data: dict[str, Any] | None = None,
              **_: object) -> object:
        if method == "PUT":
            self.puts += 1
            if self.puts <= self.fails:
                raise IncusError(RACE.replace("creating", "updating"))
            self.config = dict((data or {})["config"])
            return None
        return {"config": self.config}

    def get(self, path: str, **_: object) -> object:
        return self.query(path)


def test_an_update_that_meets_the_race_is_sent_again() -> None:
    """CI saw the race on a NAT change (`make apply TAGS=networks`), not only on a create."""
    networks = object.__new__(NETWORK.Networks)
    networks.client, networks.step = RacyClient(fails=1), "updating network net-x"
    networks.put("/1.0/networks/net-x", {"config": {"ipv4.nat": "true"}, "description": ""})
    assert networks.client.puts == 2
    assert networks.client.config == {"ipv4.nat": "true"}
