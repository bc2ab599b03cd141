"""The test bed works: a container from the local image answers Ansible.

This is the foundation every other integration test stands on: the local
image boots, gets an address from an Incus bridge, and Ansible reaches it
through the ``community.general.incus`` connection (never SSH).

Own lab: none (no AnKLuMe tree: one bare container t2f-probe on its own bridge net-t2f, launched
with plain incus, proves the image and the incus connection that every lab is built on, so it
cannot borrow a lab built with them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.incus_helpers import ansible_env, create_network, delete_by_prefix, query, run

PREFIX = "t2f"
BRIDGE = "net-t2f"
GATEWAY = "10.150.0.254"
NAME = "t2f-probe"


def _address(name: str) -> str | None:
    state = query(f"/1.0/instances/{name}/state")
    assert isinstance(state, dict)
    for addr in state["network"].get("eth0", {}).get("addresses", []):
        if addr["family"] == "inet":
            return str(addr["address"])
    return None


@pytest.fixture(scope="module")
def probe(incus: str) -> Iterator[str]:
    delete_by_prefix(PREFIX)
    create_network(BRIDGE, f"ipv4.address={GATEWAY}/24", "ipv6.address=none")
    try:
        run(["incus", "launch", incus, NAME, "--network", BRIDGE, "--quiet"])
        deadline = time.monotonic() + 60
        while _address(NAME) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        yield NAME
    finally:
        delete_by_prefix(PREFIX)


def test_container_from_local_image_gets_an_address_on_its_bridge(probe: str) -> None:
    address = _address(probe)
    assert address is not None, "no IPv4 address from the bridge's DHCP within 60 s"
    assert address.startswith("10.150.0."), address


def _ansible(probe: str, module: str, args: str, *extra: str, **env: str) -> str:
    """One ad-hoc Ansible module run on the probe through the incus connection."""
    return run(
        [
            "ansible", "all", "-i", f"{probe},", "-c", "community.general.incus",
            "-e", "ansible_python_interpreter=/usr/bin/python3",
            "-m", module, "-a", args, *extra,
        ],
        env={**ansible_env(), **env},
    )  # fmt: skip


def test_ansible_runs_a_command_through_the_incus_connection(probe: str) -> None:
    out = _ansible(probe, "ansible.builtin.command", "cat /etc/os-release", "-o")
    assert f"{probe} | CHANGED | rc=0" in out, out
    assert "VERSION_CODENAME=bookworm" in out, out


def test_ansible_gathers_facts_inside_the_container(probe: str) -> None:
    out = _ansible(
        probe,
        "ansible.builtin.setup",
        "filter=ansible_hostname",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    result = json.loads(out)
    facts = result["plays"][0]["tasks"][0]["hosts"][probe]["ansible_facts"]
    assert facts["ansible_hostname"] == probe
