"""The isolation ruleset renderer (plugins/plugin_utils/ruleset.py, ADR-072), without root.

The golden files under tests/fixtures/rulesets/ were written by the Jinja template the
renderer replaced (roles/incus_nftables/templates/anklume.nft.j2, through Ansible's
template lookup) for every case of tests/unit/ruleset_cases.py: the renderer's output is
byte-identical to what the roles loaded before. A deliberate change of the rules rewrites
them with `python -m tests.unit.ruleset_cases --write`, reviewed in the diff.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.anklume.incus.plugins.plugin_utils import ruleset
from ansible_collections.anklume.incus.plugins.plugin_utils.desired_state import (
    DesiredStateError,
)

from tests.unit.ruleset_cases import EXAMPLES, GOLDEN, cases

pytestmark = pytest.mark.unit

CASES = cases()


def test_every_example_has_a_case_and_every_case_a_golden_file() -> None:
    assert {f"example-{name}" for name in EXAMPLES} <= set(CASES)
    assert len(EXAMPLES) >= 6
    assert {p.stem for p in GOLDEN.glob("*.nft")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_ruleset_is_the_golden_file(name: str) -> None:
    assert ruleset.render(**CASES[name]) == (GOLDEN / f"{name}.nft").read_text()


def test_the_firewall_instance_names_its_own_interfaces() -> None:
    """sys_firewall hands interfaces: the same rules as host mode, on eth0 and net-*."""
    shipped = copy.deepcopy(CASES["shipped"])
    names = {d: ("eth0" if d == "admin" else f"net-{d}") for d in shipped["domains"]}
    got = ruleset.render(**{**shipped, "table": "anklume_fw", "log_drops": True},
                         interfaces=names)
    assert got == (GOLDEN / "sys-firewall.nft").read_text()


def test_a_domain_named_in_interfaces_must_exist() -> None:
    with pytest.raises(DesiredStateError, match="interfaces names 'ghost', not a domain"):
        ruleset.render(**CASES["shipped"], interfaces={"ghost": "eth9"})


def _shipped(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(CASES["shipped"]), **changes}


def _policy(**changes: Any) -> dict[str, Any]:
    policy = {"from": "pro", "from_kind": "domain", "from_cidr": "10.100.2.0/24",
              "to": "homelab", "to_kind": "domain", "to_cidr": "10.100.3.0/24",
              "protocol": "tcp", "ports": [80], "description": ""}
    return {**policy, **changes}


DOMAINS_LINE = "anklume_domains must map each domain to a record with `network`"
POLICY_LINE = "network_policies[0] ({}): needs from/to naming a domain or a machine"
BAD = [
    ({"domains": ["admin"]}, DOMAINS_LINE),
    ({"domains": {"admin": {"subnet": "10.0.0.0/24"}}}, DOMAINS_LINE),
    ({"domains": {"admin": {"network": "net-a-name-too-long"}}}, DOMAINS_LINE),
    ({"admin_domain": "nope"}, "anklume_admin_domain 'nope' is not a domain (known: admin, "),
    ({"policies": [_policy(protocol="sctp")]}, POLICY_LINE.format("pro -> homelab")),
    ({"policies": [_policy(to="nowhere")]}, POLICY_LINE.format("pro -> nowhere")),
    ({"policies": [_policy(from_kind="host")]}, POLICY_LINE.format("pro -> homelab")),
    ({"policies": [_policy(to="pro-dev", to_kind="machine", to_cidr="")]},
     POLICY_LINE.format("pro -> pro-dev")),
    ({"policies": [_policy(to="ghost", to_kind="machine", to_cidr="10.100.3.9/32")]},
     POLICY_LINE.format("pro -> ghost")),
    ({"policies": [_policy(ports=["80:90"])]}, POLICY_LINE.format("pro -> homelab")),
    ({"policies": [_policy(protocol="icmp")]}, POLICY_LINE.format("pro -> homelab")),
    ({"policies": [_policy(to="admin", to_kind="host")]}, POLICY_LINE.format("pro -> admin")),
    ({"policies": ["pro to homelab"]}, POLICY_LINE.format("? -> ?")),
]


@pytest.mark.parametrize(("changes", "line"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_one_line_with_the_fix(changes: dict[str, Any], line: str) -> None:
    with pytest.raises(DesiredStateError) as caught:
        ruleset.render(**_shipped(**changes))
    message = str(caught.value)
    assert line in message and "\n" not in message
    assert "make sync" in message or "global.admin_domain" in message


def test_isolation_off_needs_no_topology() -> None:
    """Off renders only the table's removal, whatever the records say."""
    text = ruleset.render(**_shipped(enabled="false", domains={"x": {}}))
    assert text == (GOLDEN / "shipped-isolation-off.nft").read_text()
