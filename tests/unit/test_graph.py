"""The DOT text of `make graph` (ADR-090): what each example's drawing says, drawn from the
model the nftables rules are rendered from."""

from __future__ import annotations

import hashlib

import pytest
from ansible_collections.anklume.incus.plugins.plugin_utils import ruleset

from anklume import graph, render, validate, yamlload
from anklume.model import Infra
from tests.incus_helpers import REPO, SHIPPED_INFRA

pytestmark = pytest.mark.unit

EXAMPLES = REPO / "examples"


def _infra(text: str) -> Infra:
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    return infra


def _example(name: str) -> Infra:
    return _infra((EXAMPLES / name / "infra.yml").read_text())


def _lines(infra: Infra) -> list[str]:
    return [line.strip() for line in graph.dot(infra).splitlines()]


def test_the_sandbox_is_one_cluster_without_a_way_out() -> None:
    lines = _lines(_example("sandbox-isolation"))
    assert 'subgraph "cluster_sandbox" {' in lines
    assert ('graph [label="sandbox\\nUntrusted software: assume everything here is hostile", '
            'color="#73d216", fillcolor="#eaf8dc", style="rounded,filled", penwidth=3];'
            in lines)  # subnet_id 66, 66 % 7 = 3: green
    assert '"bridge_sandbox" [label="net-sandbox\\n10.100.66.0/24", shape=ellipse, ' \
           'color="#73d216"];' in lines
    assert '"sandbox-box" [label="sandbox-box\\n10.100.66.10 (lxc)"];' in lines
    assert '"sandbox-vm" [label="sandbox-vm\\n10.100.66.20 (vm)", shape=box3d];' in lines
    assert '"disp_sandbox" [label="disposables\\n10.100.66.200-249", ' \
           'style="rounded,dashed"];' in lines
    assert '"bridge_sandbox" -> "disp_sandbox" [dir=none, color="#73d216"];' in lines
    # nat: false: no internet at all; no admin domain: no arrow across domains.
    assert not [line for line in lines if "_internet" in line]
    assert not [line for line in lines if "style=bold" in line]


def test_the_pro_workstation_draws_admin_reach_its_policy_and_the_ways_out() -> None:
    lines = _lines(_example("pro-workstation"))
    assert [line for line in lines if "style=bold" in line] == [
        f'"bridge_admin" -> "bridge_{d}" [color="#000000", style=bold];'
        for d in ("perso", "pro", "homelab")]
    assert ('"bridge_perso" -> "homelab-llm" [label="tcp 11434\\nWeb UI in perso talks to '
            'Ollama, nothing else crosses", color="#edd400"];' in lines)
    assert [line for line in lines if line.startswith('"_internet" ->')] == [
        f'"_internet" -> "bridge_{d}" [style=dashed, dir=back];'
        for d in ("admin", "perso", "pro", "homelab")]
    assert not [line for line in lines if "_host" in line]


@pytest.mark.parametrize("name", ["pro-workstation", "llm-supervisor", "teacher-lab"])
def test_one_arrow_per_policy_rule_of_the_ruleset(name: str) -> None:
    """The same model renders both: each declared policy the nftables rules accept is one
    labelled arrow of the drawing."""
    infra = _example(name)
    all_vars = render.group_all(infra)
    rules = ruleset.render("anklume", all_vars["anklume_domains"],
                           all_vars["anklume_network_policies"], infra.admin_domain)
    accepted = [line for line in rules.splitlines() if " accept comment " in line]
    arrows = [line for line in _lines(infra) if " -> " in line and "label=" in line]
    assert len(arrows) == len(accepted)


FIREWALL_VM = SHIPPED_INFRA.read_text().replace("firewall_mode: host", "firewall_mode: vm") + """
network_policies:
  - {from: pro-dev, to: homelab-llm, protocol: tcp, ports: [11434, "8000-8080"]}
  - {from: pro, to: host, protocol: tcp, ports: [3142], description: "apt cache"}
  - {from: perso, to: pro, protocol: icmp}
  - {from: homelab, to: perso, description: 'say "hi" \\ bye'}
"""


def test_firewall_mode_vm_draws_sys_firewall_on_every_bridge() -> None:
    lines = _lines(_infra(FIREWALL_VM))
    assert ('"sys-firewall" [label="sys-firewall\\n10.100.0.253 (vm)\\nroutes between '
            'domains, .253 on every bridge", shape=box3d];' in lines)
    assert [line for line in lines if "style=dotted" in line] == [
        f'"bridge_{d}" -> "sys-firewall" [dir=none, style=dotted, label="10.100.{i}.253"];'
        for d, i in (("perso", 1), ("pro", 2), ("homelab", 3))]
    assert any("every flow between domains passes through sys-firewall" in line
               for line in lines)


def test_each_policy_shape_has_its_label_and_the_host_its_node() -> None:
    lines = _lines(_infra(FIREWALL_VM))
    assert '"pro-dev" -> "homelab-llm" [label="tcp 11434, 8000-8080", color="#3465a4"];' in lines
    assert '"_host" [label="host", shape=house];' in lines
    assert '"bridge_pro" -> "_host" [label="tcp 3142\\napt cache", color="#3465a4"];' in lines
    assert '"bridge_perso" -> "bridge_pro" [label="icmp", color="#edd400"];' in lines
    # Quotes and backslashes of a description stay inside the DOT string.
    assert ('"bridge_homelab" -> "bridge_perso" [label="any protocol\\nsay \\"hi\\" \\\\ bye", '
            'color="#73d216"];' in lines)


def test_without_isolation_no_flow_is_singled_out() -> None:
    text = SHIPPED_INFRA.read_text().replace("  firewall_mode: host\n",
                                             "  firewall_mode: host\n  isolation: false\n")
    lines = _lines(_infra(text))
    assert not [line for line in lines if "style=bold" in line]
    assert any("global.isolation false: nothing between domains is filtered" in line
               for line in lines)


def test_the_text_is_the_same_each_time_and_carries_its_digest() -> None:
    text = graph.dot(_infra(FIREWALL_VM))
    assert text == graph.dot(_infra(FIREWALL_VM))
    first, comment, *rest = text.rstrip("\n").split("\n")
    body = "\n".join([first, *rest])
    assert graph.digest_in(comment) == hashlib.sha256(body.encode()).hexdigest()


def test_a_colour_declared_in_infra_yml_is_the_clusters() -> None:
    text = SHIPPED_INFRA.read_text().replace('    description: "Professional workspace"\n',
                                             '    description: "Professional workspace"\n'
                                             '    color: "#123456"\n')
    assert any(line.startswith('graph [label="pro\\nProfessional workspace", '
                               'color="#123456", fillcolor="#dbe1e6"')
               for line in _lines(_infra(text)))


def test_the_examples_all_draw() -> None:
    for path in sorted(EXAMPLES.glob("*/infra.yml")):
        infra = _infra(path.read_text())
        text = graph.dot(infra)
        assert text.startswith("digraph isolation {\n") and text.endswith("}\n"), path
        for d in infra.domains:
            assert f'subgraph "cluster_{d.name}"' in text, (path, d.name)
