"""The validated, normalised infrastructure (what the renderer consumes).

Defaults come from the schema (anklume/schema.py), their one home; the few held here in
another form (global.dhcp_range parsed, a domain's machines as a list) are pinned to it
by tests/unit/test_defaults.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from anklume.disposables import DEFAULT_RANGE, Disposables
from anklume.schema import default

Config = dict[str, str]
Devices = dict[str, dict[str, str]]

# The inventory group of the machines that declare roles: the provision play's hosts, so a
# machine with nothing to provision costs no task there (a domain name has no underscore).
PROVISION_GROUP = "anklume_provision"
# Written empty: the provision check adds to it, while the run lasts, the machines with a
# role to apply or a problem to report; the provision play runs on it (ADR-082).
PROVISION_DUE_GROUP = "anklume_provision_due"
# The machines that ask for a GPU, and the VMs: a lab without any runs neither the GPU check
# nor the VM check (site.yml; written only where a domain has such a machine).
GPU_GROUP = "anklume_gpu"
VM_GROUP = "anklume_vm"
# A gui machine's default image: global.default_os_image with this suffix, the variant
# scripts/build-image-gui.sh builds on top of it (ADR-091).
GUI_IMAGE_SUFFIX = "-gui"
# The proxy device `make gui` adds for a session (not declared: apply keeps it).
GUI_DEVICE = "anklume-gui"

# Bridges are named <prefix><domain> (docs/generated-vars.md); the one place that says so.
NETWORK_PREFIX = "net-"


def network_name(domain: str) -> str:
    """The Incus bridge of ``domain``."""
    return f"{NETWORK_PREFIX}{domain}"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = default("profile", "description")
    config: Config = field(default_factory=partial(default, "profile", "config"))
    devices: Devices = field(default_factory=partial(default, "profile", "devices"))


# A domain's way out (ADR-093): everything (open), nothing (none), or a list of rules.
EGRESS_OPEN, EGRESS_NONE, EGRESS_LIST = "open", "none", "list"


@dataclass(frozen=True)
class EgressRule:
    """One allowed destination outside: an IPv4 address, CIDR or DNS name."""

    to: str
    protocol: str = default("egress_rule", "protocol")
    ports: tuple[int | str, ...] = ()
    description: str = default("egress_rule", "description")


@dataclass
class Egress:
    mode: str = EGRESS_OPEN
    rules: list[EgressRule] = field(default_factory=list)


@dataclass
class Machine:
    name: str
    domain: str
    description: str = default("machine", "description")
    type: str = default("machine", "type")
    ip: str = default("machine", "ip")
    # Derived defaults (global.default_os_image, the domain's values): validate.py fills them.
    os_image: str = ""
    config: Config = field(default_factory=partial(default, "machine", "config"))
    devices: Devices = field(default_factory=partial(default, "machine", "devices"))
    profiles: list[str] = field(default_factory=partial(default, "machine", "profiles"))
    gpu: bool = default("machine", "gpu")
    # Apps shown on the host's screen through an xpra display of its own (ADR-091).
    gui: bool = default("machine", "gui")
    # Sound forwarded by its xpra session (gui only); the microphone too (audio only).
    audio: bool = default("machine", "audio")
    microphone: bool = default("machine", "microphone")
    roles: list[str] = field(default_factory=partial(default, "machine", "roles"))
    ephemeral: bool = default("domain", "ephemeral")
    snapshots_schedule: str = default("domain", "snapshots_schedule")
    snapshots_expiry: str = default("domain", "snapshots_expiry")
    allow_spoofing: bool = default("machine", "allow_spoofing")
    # None: its domain's egress; else a narrower one (a list or none), ADR-093.
    egress: Egress | None = None
    # Cluster member (derived: the domain's target; "" lets Incus's scheduler place it).
    target: str = default("domain", "target")


@dataclass
class Domain:
    name: str
    subnet_id: int
    description: str = default("domain", "description")
    ephemeral: bool = default("domain", "ephemeral")
    # None: infra.yml does not say; the networks role's incus_networks_nat decides.
    nat: bool | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    machines: list[Machine] = field(default_factory=list)
    target: str = default("domain", "target")
    # The project's aggregate budget (ADR-086): cpu, memory, processes, disk -> Incus string.
    limits: dict[str, str] = field(default_factory=dict)
    # None: make disp refuses the domain (disposables: false).
    disposables: Disposables | None = None
    # A QubesOS label or "#rrggbb": as declared, else its default (validate fills it in;
    # colors.hex_of gives the hex of either, ADR-090).
    color: str = ""
    egress: Egress = field(default_factory=Egress)
    # The machine (of another domain) that carries all its outbound traffic ("" for none).
    via: str = ""


def machine_ephemeral(d: Domain, declared: bool | None = None) -> bool:
    """A machine's ``ephemeral``: what it declares, else its domain's (the collection's copy
    for a hand-written host, desired_state.is_ephemeral, is pinned by test_one_home.py)."""
    return d.ephemeral if declared is None else declared


def has_gpu_device(m: Machine, d: Domain) -> bool:
    """A `type: gpu` device of the machine itself or of one of its domain's profiles (the
    collection's copy, desired_state.has_gpu_device, is pinned to it by test_one_home.py)."""
    profiles = [d.profiles[p] for p in m.profiles if p in d.profiles]
    devices = [*m.devices.values(), *(dev for p in profiles for dev in p.devices.values())]
    return any(dev.get("type") == "gpu" for dev in devices)


def uses_gpu(m: Machine, d: Domain) -> bool:
    """Whether ``m`` asks for the GPU: ``gpu: true`` or a gpu device (its ``instance_gpu``)."""
    return m.gpu or has_gpu_device(m, d)


# The network_policies endpoint that names the host itself (`to: host`).
HOST = "host"


@dataclass(frozen=True)
class Policy:
    source: str
    source_kind: str
    source_cidr: str
    target: str
    target_kind: str
    target_cidr: str
    protocol: str = default("network_policy", "protocol")
    ports: tuple[int | str, ...] = ()
    description: str = default("network_policy", "description")


@dataclass(frozen=True)
class FilePolicy:
    """One allowed `make copy` direction (file_policies[], ADR-085): a domain or machine."""

    source: str
    source_kind: str
    target: str
    target_kind: str
    description: str = default("file_policy", "description")


@dataclass
class Infra:
    project_name: str = default("top", "project_name")
    base_subnet: str = default("global", "base_subnet")
    default_os_image: str = default("global", "default_os_image")
    default_user: str = default("global", "default_user")
    gpu_policy: str = default("global", "gpu_policy")
    firewall_mode: str = default("global", "firewall_mode")
    incus_remote: str = default("global", "incus_remote")
    isolation: bool = default("global", "isolation")
    admin_domain: str = default("global", "admin_domain")
    # global.dhcp_range parsed ("100-199" in the schema).
    dhcp_range: tuple[int, int] = (100, 199)
    snapshot_before_apply: bool = default("global", "snapshot_before_apply")
    snapshot_before_apply_keep: int = default("global", "snapshot_before_apply_keep")
    # global.disposable_range parsed ("200-249" in the schema).
    disposable_range: tuple[int, int] = DEFAULT_RANGE
    domains: list[Domain] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    file_policies: list[FilePolicy] = field(default_factory=list)
    # clipboard_policies[] (ADR-091): the same shape, for `make clip` between gui machines.
    clipboard_policies: list[FilePolicy] = field(default_factory=list)
    # domain_templates: template name -> the domains it generated, in number order.
    domain_templates: dict[str, list[str]] = field(default_factory=dict)

    def subnet(self, domain: Domain) -> str:
        return f"{self.base_subnet}.{domain.subnet_id}.0/24"

    def gateway(self, domain: Domain) -> str:
        return f"{self.base_subnet}.{domain.subnet_id}.254"

    def dhcp(self, domain: Domain) -> str:
        prefix = f"{self.base_subnet}.{domain.subnet_id}"
        return f"{prefix}.{self.dhcp_range[0]}-{prefix}.{self.dhcp_range[1]}"
