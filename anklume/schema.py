"""The infra.yml schema: every key, its type, default, meaning and example.

This table is the single description of the format. The validator reads the
key names, types and defaults from it, the model's dataclasses take their
defaults from it (:func:`default`), and ``docs/infra-format.md`` embeds the
tables that :func:`render_table` produces (unit tests check all three agree).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Derived:
    """A default that is no single value: required, or taken from elsewhere (shown as is)."""

    text: str


@dataclass(frozen=True)
class Key:
    """One key of one section of infra.yml."""

    name: str
    type: str
    # The value a left-out key takes, or a Derived default.
    default: Any
    meaning: str
    example: str
    # Shown after the default in the docs, e.g. "(DHCP)".
    note: str = ""

    @property
    def default_text(self) -> str:
        """The default as the docs show it: YAML-like, then the note."""
        text = self.default.text if isinstance(self.default, Derived) else _show(self.default)
        return f"{text} {self.note}" if self.note else text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, dict) and not value:
        return "{}"
    return str(value)


REQUIRED = Derived("required")

SECTIONS: dict[str, tuple[Key, ...]] = {
    "top": (
        Key("project_name", "string", "anklume",
            "Owner of what this file creates: written as `user.anklume.owner` on every "
            "project, network, profile and instance; another owner's objects are never "
            "changed. A lowercase name: letters, digits and hyphens, starting with a letter "
            "(at most 63).",
            "project_name: my-infra"),
        Key("global", "mapping", {}, "Settings shared by all domains (see `global`).",
            "global: {base_subnet: \"10.100\"}"),
        Key("domains", "mapping of domains", REQUIRED,
            "The isolated domains, by name (see `domains.NAME`).",
            "domains: {pro: {subnet_id: 2}}"),
        Key("network_policies", "list of policies", [],
            "Allowed flows across domain isolation (see `network_policies[]`).",
            "network_policies: [{from: pro, to: homelab-llm}]"),
        Key("file_policies", "list of policies", [],
            "Allowed `make copy` directions across domains (see `file_policies[]`); within "
            "one domain copies need none.",
            "file_policies: [{from: pro, to: perso}]"),
        Key("clipboard_policies", "list of policies", [],
            "Allowed `make clip` directions between gui machines across domains (see "
            "`clipboard_policies[]`); within one domain a clip needs none.",
            "clipboard_policies: [{from: pro, to: perso}]"),
        Key("domain_templates", "mapping of templates", {},
            "Domains generated from one template, by template name (see "
            "`domain_templates.NAME`).",
            "domain_templates: {student: {count: 24, first_subnet_id: 11}}"),
        Key("allow_empty", "boolean", False,
            "`true` accepts a file without any domain: sync then takes every domain out of "
            "the inventory. Left `false`, such a file is refused; to remove everything, run "
            "`make destroy FORCE=1` while the domains are still declared, then empty the "
            "file, set `allow_empty: true` and run `make sync-clean FORCE=1`.",
            "allow_empty: true"),
    ),
    "global": (
        Key("base_subnet", "string", "10.100",
            "First two octets of every domain network: `<base_subnet>.<subnet_id>.0/24`.",
            'base_subnet: "10.100"'),
        Key("default_os_image", "string", "anklume/debian-12",
            "Image of a machine without `os_image` (the local image built by `make image`).",
            'default_os_image: "images:debian/13"'),
        Key("default_user", "string", "root", "User Ansible provisions as (informational).",
            "default_user: root"),
        Key("gpu_policy", "string", "exclusive",
            "`exclusive`: at most one GPU instance (error otherwise); "
            "`shared`: several allowed (warning).",
            "gpu_policy: shared"),
        Key("firewall_mode", "string", "host",
            "Where inter-domain filtering runs: `host` (nftables on the host) or `vm` (the "
            "`sys-firewall` instance of the admin domain routes and filters between domains; "
            "`.253` of every domain is its address; docs/network-isolation.md).",
            "firewall_mode: host"),
        Key("incus_remote", "string", "local", "Incus remote that holds the instances.",
            "incus_remote: local"),
        Key("isolation", "boolean", True, "Drop traffic between domains (nftables).",
            "isolation: false"),
        Key("admin_domain", "string", "admin",
            "Domain allowed to reach every other one; `\"\"` for none. Set explicitly, it must "
            "name a domain; left at its default with no `admin` domain, it renders as `\"\"`.",
            'admin_domain: ""'),
        Key("dhcp_range", "string", "100-199",
            "Host octets served by DHCP in every domain; static IPs must stay outside.",
            'dhcp_range: "100-149"'),
        Key("snapshot_before_apply", "boolean", False,
            "`true`: an apply snapshots each instance it is about to change (config, devices, "
            "profiles) as `anklume-pre-apply-<UTC time>`, and `make rollback` restores the "
            "newest. Off by default: on a `dir` pool each snapshot is a full copy of the "
            "instance (about 370 MiB and 6 s for the Debian image here; docs/backups.md).",
            "snapshot_before_apply: true"),
        Key("snapshot_before_apply_keep", "integer", 1,
            "Pre-apply snapshots kept per instance, the newest (1-10); older ones are deleted "
            "when a new one is taken.",
            "snapshot_before_apply_keep: 3"),
        Key("disposable_range", "string", "200-249",
            "Host octets reserved for disposables in every domain that allows them "
            "(`domains.NAME.disposables`): no static IP and no DHCP lease there; at most "
            "252 (the firewall keeps .253, the host .254).",
            'disposable_range: "220-239"'),
    ),
    "domain": (
        Key("description", "string", "", "What the domain is for.",
            'description: "Professional workspace"'),
        Key("color", "string", Derived("black for the admin domain, else by subnet_id"),
            "The domain's colour, where anklume draws it (`make graph`): a QubesOS label "
            "(`red`, `orange`, `yellow`, `green`, `gray`, `blue`, `purple`, `black`) or "
            "`\"#rrggbb\"` (quoted: `#` starts a YAML comment). Left out: see \"Domain "
            "colours\".",
            'color: "#3465a4"'),
        Key("subnet_id", "integer", REQUIRED,
            "Third octet of the domain network, 0-254, unique across domains.",
            "subnet_id: 2"),
        Key("ephemeral", "boolean", False,
            "`false` = protected: its instances get Incus's delete protection "
            "(`security.protection.delete`): `make destroy` deletes them only with FORCE=1, "
            "`PRUNE=1` never; its orphan files need FORCE=1 to be deleted.",
            "ephemeral: true"),
        Key("nat", "boolean", Derived("true"),
            "Masquerade the domain's outbound IPv4 traffic to the host's uplink (`ipv4.nat` "
            "on its bridge). `false` for a domain that must not reach the internet through "
            "the host. Left out, the role default `incus_networks_nat` (true) decides.",
            "nat: false"),
        Key("egress", "open, none or a list", "open",
            "What the domain may reach outside (through the host's uplink): `open` "
            "(everything, as `nat` allows), `none` (nothing, enforced by the host's rules) "
            "or a list of allowed destinations (see `egress[]`), everything else dropped. "
            "DNS goes to the domain's bridge resolver only (docs/network-isolation.md).",
            'egress: [{to: deb.debian.org, protocol: tcp, ports: [80, 443]}]'),
        Key("via", "string", "",
            "A machine of another domain that carries all the domain's outbound traffic "
            "(a VPN or Tor gateway): the host drops the domain's direct way out, so it "
            "fails closed when the gateway is down; DNS goes to the gateway.",
            "via: sys-vpn"),
        Key("profiles", "mapping of profiles", {},
            "Extra Incus profiles of the domain, by name (see `profiles.NAME`).",
            "profiles: {nvidia-compute: {devices: {gpu: {type: gpu}}}}"),
        Key("machines", "mapping of machines", {},
            "Instances of the domain, by name (see `machines.NAME`).",
            "machines: {pro-dev: {ip: \"10.100.2.10\"}}"),
        Key("snapshots_schedule", "string", "",
            "Default automatic snapshot schedule of its machines: 5-field cron or "
            "@hourly/@daily/@weekly/@monthly/@yearly.",
            'snapshots_schedule: "0 3 * * *"'),
        Key("snapshots_expiry", "string", "",
            "Default snapshot lifetime of its machines, e.g. `2w`, `3d`, `1d6h`.",
            "snapshots_expiry: 2w"),
        Key("disposables", "boolean or mapping", False,
            "`true` (or a mapping, see `domains.NAME.disposables`) lets `make disp` start "
            "throwaway containers in the domain, under its isolation, at addresses of "
            "`global.disposable_range` (docs/disposables.md). Left `false`, `make disp` "
            "refuses the domain.",
            "disposables: {preload: 1}"),
        Key("limits", "mapping", {},
            "The domain's resource budget, its Incus project's aggregate limits: `cpu` and "
            "`processes` (whole numbers), `memory` and `disk` (sizes like `4GiB`). Each of "
            "its machines then states its share (`limits.cpu`, `limits.memory`, "
            "`limits.processes` in its config, a root disk `size` for disk) and the shares "
            "must fit (docs/infra-format.md, \"Resource limits\").",
            'limits: {cpu: 4, memory: "8GiB", processes: 2000}'),
        Key("target", "string", "",
            "Cluster member that holds the domain's machines when `global.incus_remote` is an "
            "Incus cluster; `\"\"` lets Incus's scheduler place each one. Plan and apply "
            "stop when such a member is not online.",
            "target: node1"),
    ),
    "profile": (
        Key("description", "string", "", "What the profile is for.",
            'description: "GPU access"'),
        Key("config", "mapping of config values", {},
            "Incus config keys; booleans and numbers become Incus strings.",
            'config: {security.nesting: "true"}'),
        Key("devices", "mapping of devices", {},
            "Incus devices by name; each needs a `type`.",
            "devices: {gpu: {type: gpu, gputype: physical}}"),
    ),
    "machine": (
        Key("description", "string", "", "What the machine is for.",
            'description: "Development workspace"'),
        Key("type", "string", "lxc", "`lxc` (container) or `vm` (KVM virtual machine).",
            "type: vm"),
        Key("ip", "string", "",
            "Static IPv4 address inside the domain subnet, outside the DHCP range, "
            "not .0/.254/.255.",
            'ip: "10.100.2.10"', note="(DHCP)"),
        Key("os_image", "string", Derived("global.default_os_image (its `-gui` variant "
                                          "for a `gui` machine)"),
            "Incus image (alias) to launch.",
            'os_image: "images:debian/13"'),
        Key("config", "mapping of config values", {},
            "Incus config keys; booleans and numbers become Incus strings. A `vm` needs "
            "`limits.memory` >= 1GiB and `limits.cpu` >= 1 when set.",
            'config: {limits.cpu: "4", limits.memory: "8GiB"}'),
        Key("devices", "mapping of devices", {}, "Incus devices by name; each needs a `type`.",
            "devices: {data: {type: disk, source: /srv/data, path: /data}}"),
        Key("profiles", "list of strings", ["default"],
            "Profiles in order; each must be `default` or a profile of the domain. "
            "`default` is always applied first.",
            "profiles: [default, nvidia-compute]"),
        Key("gpu", "boolean", False,
            "Machine uses the GPU (a `type: gpu` device, own or from a profile, counts too).",
            "gpu: true"),
        Key("gui", "boolean", False,
            "Its desktop apps are shown on the host's screen (`make gui`), each window "
            "marked by the domain's colour and name (docs/desktop.md). `lxc` only.",
            "gui: true"),
        Key("audio", "boolean", False,
            "Sound of its apps plays on the host (xpra forwards the speaker through a "
            "pulseaudio of the machine); needs `gui: true`. Off by default.",
            "audio: true"),
        Key("microphone", "boolean", False,
            "The host's microphone is forwarded to its apps while its session runs; needs "
            "`audio: true`. Off by default.",
            "microphone: true"),
        Key("roles", "list of strings", [], "Ansible roles that provision it, in order.",
            "roles: [base_system, ollama_server]"),
        Key("ephemeral", "boolean", Derived("domain's ephemeral"),
            "`false` = protected (`security.protection.delete`, see `domains.NAME`); "
            "defaults to its domain's value.", "ephemeral: true"),
        Key("snapshots_schedule", "string", Derived("domain's snapshots_schedule"),
            "Automatic snapshot schedule (overrides the domain's).",
            "snapshots_schedule: '@daily'"),
        Key("snapshots_expiry", "string", Derived("domain's snapshots_expiry"),
            "Snapshot lifetime (overrides the domain's).", "snapshots_expiry: 3d"),
        Key("egress", "none or a list", Derived("its domain's"),
            "Narrows its domain's `egress` for this machine: `none`, or a list (see "
            "`egress[]`) whose flows its domain's list must also allow. Needs a static `ip`.",
            "egress: [{to: 198.51.100.10, protocol: tcp, ports: [443]}]"),
        Key("allow_spoofing", "boolean", False,
            "`true` lifts the anti-spoofing filters of its eth0 (MAC, IPv4, IPv6 source "
            "addresses): only for a machine that routes others' packets (firewall, VPN "
            "gateway). See docs/network-isolation.md.",
            "allow_spoofing: true"),
        Key("target", "string", Derived("domain's target"),
            "Cluster member that holds the machine (overrides the domain's); `\"\"` lets "
            "Incus's scheduler place it. An instance found on another member is reported "
            "with the `incus move` that fixes it, never moved by anklume.",
            "target: node2"),
    ),
    "disposables": (
        Key("preload", "integer", 0,
            "Disposables kept started and ready, so `make disp` runs its command at once; "
            "a used one is never reused, a new one is prepared behind it (0-8; each costs "
            "a running container, docs/disposables.md).",
            "preload: 1"),
        Key("image", "string", Derived("global.default_os_image"),
            "Image of the domain's disposables (`make disp IMAGE=` overrides it).",
            'image: "anklume/debian-12"'),
        Key("ttl", "string", "1h",
            "Longest life of a disposable: the reaper deletes it then, command or not "
            "(`make disp TTL=` overrides it). A duration such as `90s`, `30m`, `1h30m`, `2d`.",
            "ttl: 30m"),
    ),
    "network_policy": (
        Key("from", "string", REQUIRED, "Source: a domain or machine name.", "from: pro"),
        Key("to", "string", REQUIRED,
            "Destination: a domain or machine name, or `host` (the host's address on the "
            "source's bridge).",
            "to: homelab-llm"),
        Key("protocol", "string", "any", "`tcp`, `udp`, `icmp` or `any`.", "protocol: tcp"),
        Key("ports", "list of ports", [],
            "Ports 1-65535 or `\"a-b\"` ranges; must be empty for icmp.",
            'ports: [11434, "8000-8080"]', note="(all)"),
        Key("description", "string", "", "Why this flow is allowed.",
            'description: "Open WebUI to Ollama"'),
    ),
    "egress_rule": (
        Key("to", "string", REQUIRED,
            "An IPv4 address, a CIDR, or a DNS name (resolved when the rules are rendered: "
            "the plan shows the addresses it gave).",
            "to: 198.51.100.0/24"),
        Key("protocol", "string", "any", "`tcp`, `udp`, `icmp` or `any`.", "protocol: tcp"),
        Key("ports", "list of ports", [],
            "Ports 1-65535 or `\"a-b\"` ranges; must be empty for icmp.",
            "ports: [443]", note="(all)"),
        Key("description", "string", "", "Why this destination is allowed.",
            'description: "Package mirror"'),
    ),
    "file_policy": (
        Key("from", "string", REQUIRED,
            "Where copies come from: a domain, a template (its every domain) or a machine.",
            "from: pro"),
        Key("to", "string", REQUIRED,
            "Where they may land: a domain, a template or a machine. One direction only: "
            "`to` to `from` needs its own entry.",
            "to: perso"),
        Key("description", "string", "", "Why these copies are allowed.",
            'description: "Reports to the personal domain"'),
    ),
    "clipboard_policy": (
        Key("from", "string", REQUIRED,
            "Whose clipboard text may be taken: a domain, a template (its every domain) or "
            "a machine.",
            "from: pro"),
        Key("to", "string", REQUIRED,
            "Whose clipboard may receive it: a domain, a template or a machine. One "
            "direction only: `to` to `from` needs its own entry.",
            "to: perso"),
        Key("description", "string", "", "Why this clipboard direction is allowed.",
            'description: "Links from work to the personal browser"'),
    ),
}

# A template takes every domain key but subnet_id (derived per domain), and its machines
# every machine key but ip (derived from ip_host): docs and validator stay in step.
SECTIONS["domain_template"] = (
    Key("count", "integer", REQUIRED,
        "How many domains to generate: `<NAME><NN>`, numbered from 1 (`student01`, ...). "
        "Lowering it makes the last ones orphans; the others keep their number.",
        "count: 24"),
    Key("first_subnet_id", "integer", REQUIRED,
        "subnet_id of domain 1; domain N gets first_subnet_id + N - 1. The whole range must "
        "stay within 0-254 and apart from every other domain's subnet_id.",
        "first_subnet_id: 11"),
    Key("digits", "integer", 2,
        "Width of the zero-padded number in the names (1-3); fixed, so adding domains never "
        "renames the others.",
        "digits: 3"),
    *(k for k in SECTIONS["domain"] if k.name != "subnet_id"),
)
SECTIONS["template_machine"] = (
    Key("ip_host", "integer", Derived("none (DHCP)"),
        "Host octet of the machine's static address in each generated domain: "
        "`<base_subnet>.<subnet_id>.<ip_host>`; outside the DHCP range, 1-253.",
        "ip_host: 10"),
    *(k for k in SECTIONS["machine"] if k.name != "ip"),
)

_BY_NAME = {section: {k.name: k for k in ks} for section, ks in SECTIONS.items()}

# Keys nothing reads any more, by section, with why: an old file that holds one still syncs,
# with a warning naming the key to remove (docs/infra-format.md, "Retired keys").
RETIRED: dict[str, dict[str, str]] = {
    "global": {"default_connection": "the playbooks always connect through "
                                     "anklume.incus.anklume_incus"},
}

SECTION_TITLES: dict[str, str] = {
    "top": "Top level",
    "global": "`global`",
    "domain": "`domains.NAME`",
    "profile": "`domains.NAME.profiles.NAME`",
    "disposables": "`domains.NAME.disposables`",
    "machine": "`domains.NAME.machines.NAME`",
    "network_policy": "`network_policies[]`",
    "egress_rule": "`domains.NAME.egress[]`",
    "file_policy": "`file_policies[]`",
    "clipboard_policy": "`clipboard_policies[]`",
    "domain_template": "`domain_templates.NAME`",
    "template_machine": "`domain_templates.NAME.machines.NAME`",
}


def keys(section: str) -> dict[str, Key]:
    """The keys of ``section`` by name."""
    return {k.name: k for k in SECTIONS[section]}


def default(section: str, name: str) -> Any:
    """A fresh copy of the value key ``name`` of ``section`` takes when infra.yml leaves it out."""
    value = _BY_NAME[section][name].default
    if isinstance(value, Derived):
        raise KeyError(f"{section}.{name} has no single default ({value.text})")
    return copy.deepcopy(value)


def render_table(section: str) -> str:
    """The Markdown table documenting ``section`` (embedded in docs/infra-format.md)."""
    rows = ["| key | type | default | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for k in SECTIONS[section]:
        cells = [f"`{k.name}`", k.type, k.default_text, k.meaning, f"`{k.example}`"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
