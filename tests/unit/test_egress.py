"""A domain's way out (ADR-093), without root: the mistakes users make with `egress` and
`via` (one line, exit 2, nothing written), the records `make sync` writes, the rules and
the plan's summary rendered from them (the resolver is a table here: DNS is not this
test's to ask), and the DHCP options of a domain that leaves through a gateway. The
packets themselves: tests/integration/test_egress.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.anklume.incus.plugins.plugin_utils import desired_state as ds
from ansible_collections.anklume.incus.plugins.plugin_utils import egress, ruleset

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)
from anklume import render, validate, yamlload
from tests.unit.gen_support import refused_in_one_line

pytestmark = pytest.mark.unit

NAMES = {"mirror.example.org": ["198.51.100.12", "198.51.100.13"]}


def resolver(name: str) -> list[str]:
    if name not in NAMES:
        raise ds.DesiredStateError(f"egress: {name} does not resolve on this controller")
    return NAMES[name]


def infra(lab: str = "", machine: str = "", extra: str = "", glob: str = "") -> str:
    return f"""\
project_name: t
global:
  base_subnet: "10.100"
  admin_domain: admin
{glob}domains:
  admin:
    subnet_id: 0
    machines:
      admin-ctl: {{ip: "10.100.0.10"}}
  lab:
    subnet_id: 2
{lab}    machines:
      lab-agent:
        ip: "10.100.2.10"
{machine}      lab-other: {{}}
  net:
    subnet_id: 3
    machines:
      net-gw: {{ip: "10.100.3.10"}}
{extra}"""


BAD: list[tuple[str, str, list[str], int]] = [
    ("a word that is not one", infra(lab="    egress: closed\n"),
     ["domains.lab.egress: 'closed' is not one of open, none or a list",
      "[{to: 198.51.100.10, protocol: tcp, ports: [443]}]"], 12),
    ("an IPv6 destination", infra(lab="    egress: [{to: '2001:db8::1'}]\n"),
     ["domains.lab.egress[0].to: IPv6 destinations are not supported"], 12),
    ("a CIDR with host bits", infra(lab="    egress: [{to: 198.51.100.10/24}]\n"),
     ["domains.lab.egress[0].to: '198.51.100.10/24' is not an IPv4 address or CIDR"], 12),
    ("neither address nor name", infra(lab="    egress: [{to: 'my mirror'}]\n"),
     ["'my mirror' is neither an IPv4 address, a CIDR nor a DNS name"], 12),
    ("icmp with ports", infra(lab="    egress: [{to: 198.51.100.10, protocol: icmp, "
                                  "ports: [1]}]\n"),
     ["domains.lab.egress[0].ports: icmp has no ports"], 12),
    ("a misspelt protocol", infra(lab="    egress: [{to: 198.51.100.10, protocol: tpc}]\n"),
     ["'tpc' is not one of tcp, udp, icmp, any", "did you mean 'tcp'?"], 12),
    ("a misspelt key", infra(lab="    egress: [{to: 198.51.100.10, port: [443]}]\n"),
     ["domains.lab.egress[0].port: unknown key 'port'", "did you mean 'ports'?"], 12),
    ("egress a number", infra(lab="    egress: 443\n"),
     ["domains.lab.egress: expected open, none or a list of destinations, got int"], 12),
    ("a machine's egress open", infra(machine="        egress: open\n"),
     ["domains.lab.machines.lab-agent.egress: 'open' is not one of none or a list"], 15),
    ("a machine's egress without an ip",
     infra().replace("      lab-other: {}", "      lab-other: {egress: none}"),
     ["domains.lab.machines.lab-other.egress: machine lab-other has no static ip"], 15),
    ("a machine widening none",
     infra(lab="    egress: none\n", machine="        egress: [{to: 198.51.100.10}]\n"),
     ["domains.lab.machines.lab-agent.egress: domain lab has egress: none; a machine "
      "cannot widen it"], 16),
    ("via an unknown machine", infra(lab="    via: net-gwy\n"),
     ["domains.lab.via: 'net-gwy' is not a machine of this file"], 12),
    ("via a machine of the domain itself", infra(lab="    via: lab-agent\n"),
     ["domains.lab.via: lab-agent is a machine of lab itself"], 12),
    ("via with an egress list",
     infra(lab="    via: net-gw\n    egress: [{to: 198.51.100.10}]\n"),
     ["domains.lab.egress: domain lab leaves through net-gw: its egress is the gateway's"], 13),
    ("via sys-firewall",
     infra(lab="    via: sys-firewall\n", glob="  firewall_mode: vm\n"),
     ["domains.lab.via: sys-firewall routes between domains, not out"], 13),
    ("a loop of gateways",
     infra(lab="    via: net-gw\n", extra="    via: lab-agent\n"),
     ["the gateways form a loop: lab -> net -> lab"], 12),
    ("a gateway's address taken",
     infra(lab="    via: net-gw\n").replace('ip: "10.100.2.10"', 'ip: "10.100.2.252"'),
     ["domains.lab.machines.lab-agent.ip: 10.100.2.252 is reserved for the gateway net-gw"],
     15),
    ("egress without isolation",
     infra(lab="    egress: none\n", glob="  isolation: false\n"),
     ["domains.lab.egress: the way out is enforced by the isolation rules, and "
      "global.isolation is false"], 13),
]


@pytest.mark.parametrize(("text", "expected", "line"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_a_wrong_way_out_exits_2_in_one_line_and_writes_nothing(
        tmp_path: Path, text: str, expected: list[str], line: int) -> None:
    refused_in_one_line(tmp_path, text, expected, line)


def rendered(text: str) -> dict[str, str]:
    infra_, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return render.render(infra_)


def domains_of(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(rendered(text)["group_vars/all.yml"])
    return loaded["anklume_domains"]


LIST = ("    egress:\n"
        "      - {to: 198.51.100.10, protocol: tcp, ports: [443], description: the API}\n"
        "      - {to: mirror.example.org., protocol: tcp, ports: [80, 443]}\n"
        "      - {to: 203.0.113.0/24, protocol: icmp}\n")
NARROW = "        egress: [{to: mirror.example.org, protocol: tcp, ports: [443]}]\n"


def test_a_list_renders_its_record_and_the_machines_that_narrow_it() -> None:
    lab = domains_of(infra(lab=LIST, machine=NARROW))["lab"]
    assert lab["via"] is None
    assert lab["egress"] == {
        "mode": "list",
        "rules": [
            {"to": "198.51.100.10", "protocol": "tcp", "ports": [443],
             "description": "the API"},
            {"to": "mirror.example.org", "protocol": "tcp", "ports": [80, 443],
             "description": ""},
            {"to": "203.0.113.0/24", "protocol": "icmp", "ports": [], "description": ""}],
        "machines": {"lab-agent": {"address": "10.100.2.10", "mode": "list", "rules": [
            {"to": "mirror.example.org", "protocol": "tcp", "ports": [443],
             "description": ""}]}}}


def test_the_rules_accept_the_list_and_drop_the_rest_of_the_way_out() -> None:
    domains = domains_of(infra(lab=LIST, machine=NARROW))
    text = ruleset.render("anklume", domains, [], "admin", resolver=resolver)
    assert '\t\tiifname "net-lab" jump egress-lab\n' in text
    chain = text[text.index("\tchain egress-lab {"):]
    chain = chain[:chain.index("\t}\n")]
    assert chain.splitlines()[1:] == [
        "\t\tip saddr 10.100.2.10 jump egress.lab-agent",
        '\t\tip daddr { 198.51.100.10 } tcp dport { 443 } accept comment "198.51.100.10: the '
        'API"',
        '\t\tip daddr { 198.51.100.12, 198.51.100.13 } tcp dport { 80, 443 } accept comment '
        '"mirror.example.org = 198.51.100.12 198.51.100.13"',
        '\t\tip daddr { 203.0.113.0/24 } meta l4proto icmp accept comment "203.0.113.0/24"',
        '\t\tcounter drop comment "anklume: lab egress"']
    assert ('\tchain egress.lab-agent {\n\t\tip daddr { 198.51.100.12, 198.51.100.13 } tcp '
            'dport { 443 } return comment "mirror.example.org = 198.51.100.12 198.51.100.13"'
            '\n\t\tcounter drop comment "anklume: lab-agent egress"\n\t}\n') in text
    # The way out comes after every rule between domains: a policy still crosses.
    assert text.index("anklume: inter-domain") < text.index("jump egress-lab")


def test_none_and_via_drop_the_whole_way_out_and_via_keeps_dns_off_the_host() -> None:
    domains = domains_of(infra(lab="    via: net-gw\n", extra="    egress: none\n"))
    text = ruleset.render("anklume", domains, [], "admin", resolver=resolver)
    assert '\t\tiifname "net-lab" counter drop comment "anklume: lab leaves through net-gw ' \
           'only"\n' in text
    assert '\t\tiifname "net-net" counter drop comment "anklume: net egress none"\n' in text
    assert ('\t\tiifname { "net-lab" } meta l4proto { tcp, udp } th dport 53 counter drop '
            'comment "anklume: DNS through the gateway"\n') in text
    assert "jump egress" not in text


def test_open_everywhere_renders_the_ruleset_as_before() -> None:
    domains = domains_of(infra())
    text = ruleset.render("anklume", domains, [], "admin", resolver=resolver)
    assert "way out" not in text and "egress" not in text
    assert egress.summary(domains, resolver) == []


def test_the_firewall_instance_does_not_carry_the_way_out() -> None:
    domains = domains_of(infra(lab=LIST))
    interfaces = {name: f"eth{i}" for i, name in enumerate(domains)}
    text = ruleset.render("anklume", domains, [], "admin", interfaces=interfaces,
                          resolver=resolver)
    assert "egress" not in text


def test_a_name_that_does_not_resolve_stops_the_rendering_in_one_line() -> None:
    domains = domains_of(infra(lab="    egress: [{to: nowhere.example.org}]\n"))
    with pytest.raises(ds.DesiredStateError, match=r"nowhere\.example\.org does not resolve"):
        ruleset.render("anklume", domains, [], "admin", resolver=resolver)


def test_the_plan_summary_names_each_domains_way_out() -> None:
    domains = domains_of(infra(lab=LIST, machine=NARROW, extra="    egress: none\n"))
    assert egress.summary(domains, resolver) == [
        "admin: open",
        "lab: 198.51.100.10 tcp/443, mirror.example.org tcp/80,443 (198.51.100.12 "
        "198.51.100.13), 203.0.113.0/24 icmp",
        "lab-agent: mirror.example.org tcp/443 (198.51.100.12 198.51.100.13)",
        "net: none"]
    via = domains_of(infra(lab="    via: net-gw\n"))
    assert egress.summary(via, resolver)[1] == \
        "lab: via net-gw (DNS too; nothing when it is down)"


def test_the_gateway_gets_a_nic_on_the_domains_bridge_and_its_role() -> None:
    files = rendered(infra(lab="    via: net-gw\n"))
    gw = yaml.safe_load(files["host_vars/net-gw.yml"])
    assert gw["instance_devices"]["via-lab"] == {
        "type": "nic", "network": "net-lab", "name": "net-lab", "ipv4.address": "10.100.2.252",
        "security.mac_filtering": "false", "security.ipv4_filtering": "false",
        "security.ipv6_filtering": "false"}
    assert gw["instance_roles"] == ["egress_gateway"]
    assert gw["anklume_gateway"] == {"interfaces": {"net-lab": "10.100.2.252/24"},
                                     "domains": ["lab"], "block": "10.100.0.0/16"}
    assert "anklume_gateway" not in yaml.safe_load(files["host_vars/lab-agent.yml"])


def test_dhcp_sends_a_gateway_domain_out_through_the_gateway() -> None:
    domains = domains_of(infra(lab="    via: net-gw\n"))
    bridges = {n["name"]: n["config"] for n in ds.networks(domains, True, "none", {})}
    assert bridges["net-lab"]["raw.dnsmasq"] == (
        "dhcp-option=option:classless-static-route,10.100.0.0/16,10.100.2.254,"
        "0.0.0.0/0,10.100.2.252\ndhcp-option=option:router,10.100.2.252\n"
        "dhcp-option=option:dns-server,10.100.2.252")
    assert "raw.dnsmasq" not in bridges["net-net"]
    # Never masqueraded by the host: the gateway sees each machine's own address.
    assert bridges["net-lab"]["ipv4.nat"] == "false"
    assert bridges["net-net"]["ipv4.nat"] == "true"


def test_the_drawing_shows_each_way_out() -> None:
    from anklume import graph
    text = infra(lab="    egress: [{to: 198.51.100.10, protocol: tcp, ports: [443]}]\n",
                 extra="    egress: none\n").replace("  admin:\n    subnet_id: 0\n",
                                                    "  admin:\n    subnet_id: 0\n    via: net-gw\n")
    infra_, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    lines = graph.dot(infra_).splitlines()
    assert '  "_internet" -> "bridge_lab" [style=dashed, dir=back, label="only: ' \
           '198.51.100.10 tcp/443"];' in lines
    assert '  "bridge_admin" -> "net-gw" [style=dashed, label="via: all its traffic, DNS ' \
           'too"];' in lines
    assert not any('-> "bridge_net"' in line and "_internet" in line for line in lines)
    assert not any('-> "bridge_admin"' in line and "_internet" in line for line in lines)
