"""The inputs of the isolation ruleset pinned by golden files (tests/unit/test_ruleset.py).

Every example and the shipped infra.yml as `make sync` renders them, the isolation test
lab's variables, and variants of the shipped file for each branch of the ruleset:
firewall_mode vm, isolation off, the firewall instance's own interfaces with logged drops,
one domain, no domain, and every shape of network policy.

    python -m tests.unit.ruleset_cases --write   # rewrite the golden files (then review)
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.incus_helpers import SHIPPED_INFRA
from tests.integration import isolation_lab
from tests.unit.gen_support import run

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "rulesets"
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/infra.yml"))


def synced(infra: Path) -> dict[str, Any]:
    """The ruleset's inputs from what `make sync` writes for INFRA."""
    with tempfile.TemporaryDirectory() as tmp:
        result = run(str(infra), "--output", tmp, "--quiet")
        assert result.code == 0, result.err
        allvars = yaml.safe_load((Path(tmp) / "group_vars" / "all.yml").read_text())
    return {
        "table": "anklume",
        "domains": allvars["anklume_domains"],
        "policies": allvars.get("anklume_network_policies", []),
        "admin_domain": allvars.get("anklume_admin_domain", "admin"),
        "priority": -10,
        "firewall_mode": allvars.get("anklume_firewall_mode", "host"),
        "log_drops": False,
        "enabled": allvars.get("anklume_isolation", True),
    }


def _policy(src: tuple[str, str, str], dst: tuple[str, str, str], protocol: str,
            ports: list[Any], description: str = "") -> dict[str, Any]:
    return {"from": src[0], "from_kind": src[1], "from_cidr": src[2], "to": dst[0],
            "to_kind": dst[1], "to_cidr": dst[2], "protocol": protocol, "ports": ports,
            "description": description}


def _every_policy_shape(shipped: dict[str, Any]) -> dict[str, Any]:
    case = copy.deepcopy(shipped)
    pro = ("pro", "domain", "10.100.2.0/24")
    dev = ("pro-dev", "machine", "10.100.2.10/32")
    llm = ("homelab-llm", "machine", "10.100.3.10/32")
    perso = ("perso", "domain", "10.100.1.0/24")
    host = ("host", "host", "")
    case["policies"] = [
        _policy(pro, llm, "tcp", [11434, "8000-8080"], "pro to the LLM API"),
        _policy(dev, perso, "udp", [], ""),
        _policy(perso, llm, "icmp", [], 'a "quoted" \\ and a\nnew line'),
        _policy(perso, pro, "any", [53, "6000-6010"], "x" * 104),
        _policy(dev, llm, "any", [], "y" * 106),
        _policy(pro, host, "tcp", [8443], "pro to a host service"),
        _policy(dev, host, "icmp", [], ""),
        _policy(perso, host, "any", [], "z" * 105),
    ]
    return case


# The resolver of the egress cases: DNS is not a golden file's to ask.
NAMES = {"deb.debian.org": ["198.51.100.20", "198.51.100.21"]}


def _egress_every_shape(shipped: dict[str, Any]) -> dict[str, Any]:
    """Each way out (ADR-093): a list with an address, a CIDR, a name, every protocol and a
    narrowing machine (pro); none (homelab); via a gateway (perso); open (admin)."""
    case = copy.deepcopy(shipped)
    domains = case["domains"]
    rules = [{"to": "198.51.100.10", "protocol": "tcp", "ports": [443], "description": "API"},
             {"to": "203.0.113.0/24", "protocol": "icmp", "ports": [], "description": ""},
             {"to": "deb.debian.org", "protocol": "any", "ports": [80, "8000-8080"],
              "description": "mirror"},
             {"to": "198.51.100.53", "protocol": "udp", "ports": [], "description": ""}]
    domains["pro"]["egress"] = {"mode": "list", "rules": rules, "machines": {
        "pro-dev": {"address": "10.100.2.10", "mode": "list", "rules": rules[2:3]}}}
    domains["homelab"]["egress"] = {"mode": "none", "rules": [], "machines": {}}
    domains["perso"]["via"] = {"machine": "homelab-llm", "address": "10.100.1.252",
                               "routes": "10.100.0.0/16"}
    case["resolver"] = NAMES.__getitem__
    return case


def cases() -> dict[str, dict[str, Any]]:
    """Name -> the keyword arguments of ruleset.render."""
    found = {f"example-{name}": synced(REPO / "examples" / name / "infra.yml")
             for name in EXAMPLES}
    shipped = synced(SHIPPED_INFRA)
    found["shipped"] = shipped
    found["shipped-firewall-vm"] = {**copy.deepcopy(shipped), "firewall_mode": "vm"}
    found["shipped-isolation-off"] = {**copy.deepcopy(shipped), "enabled": False}
    firewall = copy.deepcopy(shipped)
    for name, record in firewall["domains"].items():
        record["network"] = "eth0" if name == "admin" else f"net-{name}"
    found["sys-firewall"] = {**firewall, "table": "anklume_fw", "log_drops": True}
    one = copy.deepcopy(shipped)
    one["domains"] = {"admin": one["domains"]["admin"]}
    found["one-domain"] = one
    found["no-domain"] = {**copy.deepcopy(shipped), "domains": {}, "admin_domain": ""}
    found["no-admin-domain"] = {**copy.deepcopy(shipped), "admin_domain": ""}
    found["every-policy-shape"] = _every_policy_shape(shipped)
    found["every-policy-shape-vm"] = {**_every_policy_shape(shipped), "firewall_mode": "vm"}
    found["egress-every-shape"] = _egress_every_shape(shipped)
    lab = isolation_lab.lab_vars()
    found["isolation-lab"] = {
        "table": lab["incus_nftables_table"], "domains": lab["anklume_domains"],
        "policies": lab["anklume_network_policies"], "admin_domain": lab["anklume_admin_domain"],
        "priority": -10, "firewall_mode": "host", "log_drops": False,
        "enabled": lab["anklume_isolation"]}
    return found


def write() -> None:
    """Rewrite every golden file with the renderer of today (then review the diff)."""
    from ansible_collections.anklume.incus.plugins.plugin_utils import ruleset
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, inputs in cases().items():
        (GOLDEN / f"{name}.nft").write_text(ruleset.render(**inputs))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.ruleset_cases --write")
    write()
