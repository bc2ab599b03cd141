"""The validated, normalised infrastructure (what the renderer consumes)."""

from __future__ import annotations

from dataclasses import dataclass, field

Config = dict[str, str]
Devices = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    config: Config = field(default_factory=dict)
    devices: Devices = field(default_factory=dict)

    @property
    def has_gpu(self) -> bool:
        return any(d.get("type") == "gpu" for d in self.devices.values())


@dataclass
class Machine:
    name: str
    domain: str
    description: str = ""
    type: str = "lxc"
    ip: str = ""
    os_image: str = ""
    config: Config = field(default_factory=dict)
    devices: Devices = field(default_factory=dict)
    profiles: list[str] = field(default_factory=lambda: ["default"])
    gpu: bool = False
    roles: list[str] = field(default_factory=list)
    ephemeral: bool = False
    snapshots_schedule: str = ""
    snapshots_expiry: str = ""


@dataclass
class Domain:
    name: str
    subnet_id: int
    description: str = ""
    ephemeral: bool = False
    # None: infra.yml does not say; the networks role's incus_networks_nat decides.
    nat: bool | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    machines: list[Machine] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    source: str
    source_kind: str
    source_cidr: str
    target: str
    target_kind: str
    target_cidr: str
    protocol: str = "any"
    ports: tuple[int | str, ...] = ()
    description: str = ""


@dataclass
class Infra:
    project_name: str = "anklume"
    base_subnet: str = "10.100"
    default_os_image: str = "anklume/debian-12"
    default_connection: str = "community.general.incus"
    default_user: str = "root"
    gpu_policy: str = "exclusive"
    firewall_mode: str = "host"
    incus_remote: str = "local"
    isolation: bool = True
    admin_domain: str = "admin"
    dhcp_range: tuple[int, int] = (100, 199)
    domains: list[Domain] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)

    def subnet(self, domain: Domain) -> str:
        return f"{self.base_subnet}.{domain.subnet_id}.0/24"

    def gateway(self, domain: Domain) -> str:
        return f"{self.base_subnet}.{domain.subnet_id}.254"

    def dhcp(self, domain: Domain) -> str:
        prefix = f"{self.base_subnet}.{domain.subnet_id}"
        return f"{prefix}.{self.dhcp_range[0]}-{prefix}.{self.dhcp_range[1]}"
