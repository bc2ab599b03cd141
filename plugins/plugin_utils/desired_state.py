# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Incus objects infra.yml asks for, from the variables `make sync` writes (ADR-055).

Pure functions, no Ansible import: the filter plugin plugins/filter/desired_state.py hands
them the play's variables, and tests/unit/test_desired_state.py calls them directly.
``domains`` is ``anklume_domains`` (docs/generated-vars.md): a record names its own bridge
(``network``) and project (``project``); nothing here derives a name again. ``hostvars``
is any mapping host -> variables (Ansible's lazy ``hostvars`` included: each host's
variables are read once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_TRUE = {"yes", "on", "true", "1"}
_FALSE = {"no", "off", "false", "0"}
# What a machine without host variables gets (the generator writes them all: these are
# the fallbacks for a hand-written host; tests/unit/test_defaults.py ties them to schema.py).
MACHINE_TYPE = "lxc"
MACHINE_PROFILES = ("default",)
# Incus's anti-spoofing on every eth0 anklume creates (ADR-059): the NIC may send only from
# its own MAC and its own addresses (the static one, else the DHCP lease Incus pins), and
# cannot answer ARP/NDP for another's. A machine with ``instance_allow_spoofing`` gets "false".
NIC_FILTERS = ("security.mac_filtering", "security.ipv4_filtering", "security.ipv6_filtering")


def nic_filters(on: bool) -> dict[str, str]:
    """The anti-spoofing keys of an eth0, all on or all off."""
    return dict.fromkeys(NIC_FILTERS, "true" if on else "false")


class DesiredStateError(ValueError):
    """The variables cannot describe an object; the message is one line with the fix."""


def as_bool(value: Any) -> bool:
    """Ansible's `bool` filter: yes/on/true/1 (any case) and 1 are true."""
    if isinstance(value, bool):
        return value
    text = value
    if isinstance(value, str):
        text = value.lower()
    elif isinstance(value, int):
        text = str(value)
    try:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    except TypeError:  # unhashable: a list or a mapping is not a boolean
        return False
    return bool(text == 1)


def plain(value: Any) -> Any:
    """A copy made of dicts and lists, so no caller shares (or mutates) a variable's data."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _or(variables: Mapping[str, Any], key: str, default: Any) -> Any:
    """Jinja's ``default(x, true)``: the default also replaces an empty or false value."""
    value = variables.get(key)
    return value if value else default


def _required(name: str, record: Mapping[str, Any], key: str) -> str:
    """A key every generated domain record holds; a clear line when a hand-written one lacks it."""
    value: object = record.get(key)
    if not value or not isinstance(value, str):
        raise DesiredStateError(
            f"anklume_domains.{name} has no {key} (docs/generated-vars.md): "
            f"run `make sync` to rewrite group_vars/all.yml")
    return value


def network_of(name: str, record: Mapping[str, Any]) -> str:
    """The bridge of domain ``name``: its record's ``network`` (the generator's name)."""
    return _required(name, record, "network")


def project_of(name: str, record: Mapping[str, Any]) -> str:
    """The Incus project of domain ``name``: its record's ``project``."""
    return _required(name, record, "project")


# -- bridges, projects, profiles (one per domain in scope) --------------------------------

def firewall_route(fw: Mapping[str, Any], gateway: str) -> str:
    """firewall_mode vm (ADR-066): DHCP hands out a route to every domain through the
    firewall's address on this bridge, and the default route through the host (a client
    that takes classless routes ignores the plain router option, RFC 3442)."""
    return (f"dhcp-option=option:classless-static-route,{fw['routes']},{fw['address']},"
            f"0.0.0.0/0,{gateway}")


def via_route(via: Mapping[str, Any], fw: Mapping[str, Any] | None, gateway: str) -> str:
    """A domain that leaves through a gateway (ADR-093): DHCP routes the other domains
    through the host (or sys-firewall) as before, everything else and DNS through the
    gateway's address on the bridge. The host drops what still comes its way."""
    domains_via = fw["address"] if fw else gateway
    return (f"dhcp-option=option:classless-static-route,{via['routes']},{domains_via},"
            f"0.0.0.0/0,{via['address']}\ndhcp-option=option:router,{via['address']}\n"
            f"dhcp-option=option:dns-server,{via['address']}")


def networks(domains: Mapping[str, Any], nat: Any, ipv6_address: str,
             extra_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One bridge per domain: gateway/prefix, NAT (the domain's ``nat``, else ``nat``), DHCP."""
    out = []
    for name, d in domains.items():
        prefix = str(d.get("subnet", "x/24")).partition("/")[2]
        if not prefix:
            raise DesiredStateError(
                f"anklume_domains.{name}.subnet has no /prefix: run `make sync`")
        description = d.get("description", "")
        config = {
            "ipv4.address": f"{_required(name, d, 'gateway')}/{prefix}",
            # A domain that leaves through a gateway is never masqueraded by the host: with
            # br_netfilter its frames to the gateway would leave with the host's address.
            "ipv4.nat": "true" if as_bool(nat if d.get("nat") is None else d["nat"])
                        and not d.get("via") else "false",
            "ipv4.dhcp.ranges": _required(name, d, "dhcp_range"),
            "ipv6.address": ipv6_address,
            **plain(extra_config),
        }
        if d.get("via"):
            config["raw.dnsmasq"] = via_route(d["via"], d.get("firewall"), d["gateway"])
        elif d.get("firewall"):
            config["raw.dnsmasq"] = firewall_route(d["firewall"], d["gateway"])
        out.append({
            "name": network_of(name, d),
            "description": f"anklume domain {name}" + (f": {description}" if description else ""),
            "config": config,
        })
    return out


# A domain's ``limits`` (its budget, ADR-086) and the project keys they become; the project
# module owns these keys: a limit the domain no longer sets is removed from the project.
LIMIT_KEYS = ("cpu", "memory", "processes", "disk")


def project_limits(name: str, record: Mapping[str, Any]) -> dict[str, str]:
    """The project config keys of domain ``name``'s ``limits`` (``{}`` when it has none)."""
    limits = record.get("limits") or {}
    if not isinstance(limits, Mapping) or any(k not in LIMIT_KEYS for k in limits):
        raise DesiredStateError(
            f"anklume_domains.{name}.limits must map some of {', '.join(LIMIT_KEYS)} to "
            "amounts (docs/generated-vars.md): run `make sync`")
    return {f"limits.{k}": str(v) for k, v in limits.items()}


def projects(domains: Mapping[str, Any], config: Mapping[str, Any],
             storage_pool: str) -> list[dict[str, Any]]:
    """One project per domain, with its budget (``limits``); its default profile holds the
    root disk and eth0 on the bridge, with the anti-spoofing filters on."""
    return [{
        "name": project_of(name, d),
        "description": d.get("description", ""),
        "config": {**plain(config), **project_limits(name, d)},
        "default_devices": {
            "root": {"type": "disk", "path": "/", "pool": storage_pool},
            "eth0": {"type": "nic", "name": "eth0", "network": network_of(name, d),
                     **nic_filters(True)},
        },
    } for name, d in domains.items()]


def _domain_profiles(domains: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for name, d in domains.items():
        project = project_of(name, d)
        for pname, profile in (d.get("profiles") or {}).items():
            yield project, pname, profile or {}


def profiles(domains: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The extra profiles each domain declares, in its project."""
    return [{
        "project": project,
        "name": pname,
        "description": p.get("description", ""),
        "config": plain(_or(p, "config", {})),
        "devices": plain(_or(p, "devices", {})),
    } for project, pname, p in _domain_profiles(domains)]


def profile_refs(domains: Mapping[str, Any]) -> list[str]:
    """Every extra profile as ``project/name``: the declared set for orphan detection."""
    return [f"{project}/{pname}" for project, pname, _body in _domain_profiles(domains)]


# -- instances (one per host in scope whose domain is declared) -----------------------------

def machine_vars(hosts: Iterable[str], hostvars: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each host's ``instance_*`` variables, the only ones the instance rules read, as plain
    values: read once and handed to the filters below in place of ``hostvars``, whose every
    ``hostvars[host]`` has Ansible assemble that host's variables anew (ADR-080)."""
    found: dict[str, dict[str, Any]] = {}
    for host in hosts:
        v = hostvars[host]
        found[host] = {k: v[k] for k in v if isinstance(k, str) and k.startswith("instance_")}
    return found


def _declared_hosts(hosts: Iterable[str], hostvars: Mapping[str, Any],
                    domains: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any], str]]:
    """(host, its variables, its domain) for the hosts whose domain infra.yml declares.

    A host of an undeclared domain (stale generated files) is not ours to reconcile: its
    instance is an orphan (ADR-053).
    """
    for host in hosts:
        if host not in hostvars:
            raise DesiredStateError(f"{host}: no variables for this host (a host list wider "
                                    "than the play's, given to a filter with machine_vars)")
        v = hostvars[host]
        domain = v.get("instance_domain", "")
        if isinstance(domain, str) and domain in domains:
            yield host, v, domain


def instance_refs(domains: Mapping[str, Any]) -> list[str]:
    """Every machine the whole infra declares, as ``project/name`` (orphan detection)."""
    return [f"{project_of(name, d)}/{machine}"
            for name, d in domains.items() for machine in d.get("machines", [])]


def admin_socket_device(host_path: str, path: str) -> dict[str, str]:
    """The proxy to the host's Incus socket given to the admin domain's machines (ADR-019)."""
    return {"type": "proxy", "bind": "instance", "connect": f"unix:{host_path}",
            "listen": f"unix:{path}", "uid": "0", "gid": "0", "mode": "0660"}


# -- GPU (ADR-064) --------------------------------------------------------------------------

# Where the mount method puts the driver's user space inside a container (bin/, lib64/).
GPU_USERSPACE_PATH = "/usr/local/nvidia"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def has_gpu_device(v: Mapping[str, Any], d: Mapping[str, Any]) -> bool:
    """A `type: gpu` device of the machine itself or of one of its domain's profiles: the
    generator's anklume.model.has_gpu_device on the variables it writes (test_one_home.py)."""
    devices = list((_or(v, "instance_devices", {})).values())
    for pname in _or(v, "instance_profiles", []):
        devices += list(((d.get("profiles") or {}).get(pname) or {}).get("devices", {}).values())
    return any((dev or {}).get("type") == "gpu" for dev in devices)


def gpu_machines(hosts: Iterable[str], hostvars: Mapping[str, Any],
                 domains: Mapping[str, Any]) -> list[dict[str, str]]:
    """The instances of ``hosts`` that ask for a GPU (``instance_gpu``), for the GPU check."""
    return [{"name": v.get("instance_name", host), "project": project_of(domain, domains[domain]),
             "type": v.get("instance_type", MACHINE_TYPE)}
            for host, v, domain in _declared_hosts(hosts, hostvars, domains)
            if as_bool(v.get("instance_gpu", False))]


def gpu_additions(v: Mapping[str, Any], d: Mapping[str, Any], userspace: str,
                  driver_dir: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(config, devices) a GPU instance gets: the gpu device unless one is declared, and for a
    container the driver's user space by ``runtime`` (nvidia.runtime) or ``mount``."""
    config: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    if not as_bool(v.get("instance_gpu", False)):
        return config, devices
    if not has_gpu_device(v, d):
        devices["gpu"] = {"type": "gpu", "gputype": "physical"}
    if v.get("instance_type", MACHINE_TYPE) == "vm":
        return config, devices
    if userspace == "runtime":
        config.update({"nvidia.runtime": "true",
                       "nvidia.driver.capabilities": "compute,utility"})
    elif userspace == "mount":
        devices["nvidia-userspace"] = {"type": "disk", "source": driver_dir,
                                       "path": GPU_USERSPACE_PATH, "readonly": "true"}
        config.update({
            "environment.LD_LIBRARY_PATH": f"{GPU_USERSPACE_PATH}/lib64",
            "environment.PATH": f"{GPU_USERSPACE_PATH}/bin:{_PATH}",
        })
    return config, devices


def is_ephemeral(v: Mapping[str, Any], d: Mapping[str, Any]) -> bool:
    """A machine's ``instance_ephemeral``, else (a hand-written host) its domain record's
    ``ephemeral``: the generator's anklume.model.machine_ephemeral (test_one_home.py)."""
    return as_bool(v.get("instance_ephemeral", d.get("ephemeral", False)))


def image_of(v: Mapping[str, Any], default_image: str) -> str:
    """The image a host's instance is created from: its ``instance_os_image``, else the
    default (also read by scripts/remote_image.py, which copies it to a remote)."""
    return str(_or(v, "instance_os_image", default_image))


def member_of(v: Mapping[str, Any]) -> str:
    """The cluster member a host's instance is pinned to (``instance_target``), "" for any."""
    return str(v.get("instance_target") or "")


def placements(hosts: Iterable[str], hostvars: Mapping[str, Any],
               domains: Mapping[str, Any]) -> list[dict[str, str]]:
    """The declared instances of ``hosts`` and the member each is pinned to ("" for any),
    for the cluster check that runs before any change."""
    return [{"name": v.get("instance_name", host), "project": project_of(domain, domains[domain]),
             "target": member_of(v)}
            for host, v, domain in _declared_hosts(hosts, hostvars, domains)]


def _instance(host: str, v: Mapping[str, Any], domain: str, d: Mapping[str, Any],
              image: str, admin_device: Mapping[str, str] | None,
              gpu: Mapping[str, str] | None = None) -> dict[str, Any]:
    ip = _or(v, "instance_ip", "")
    devices = plain(_or(v, "instance_devices", {}))
    spoofing = as_bool(v.get("instance_allow_spoofing", False))
    if ip or spoofing:
        # The static address (or the lifted filters of a routing machine) is set on eth0
        # itself, replacing the profile's eth0 and any eth0 the machine declares.
        devices["eth0"] = {"type": "nic", "name": "eth0", "network": network_of(domain, d),
                           **({"ipv4.address": ip} if ip else {}), **nic_filters(not spoofing)}
    if admin_device is not None:
        devices["incus-socket"] = dict(admin_device)
    ephemeral = is_ephemeral(v, d)
    config = plain(_or(v, "instance_config", {}))
    gpu = gpu or {}
    gpu_config, gpu_devices = gpu_additions(v, d, gpu.get("userspace", ""),
                                            gpu.get("driver_dir", GPU_USERSPACE_PATH))
    config = {**gpu_config, **config}
    devices = {**gpu_devices, **devices}
    config["security.protection.delete"] = "false" if ephemeral else "true"
    for key, var in (("snapshots.schedule", "instance_snapshots_schedule"),
                     ("snapshots.expiry", "instance_snapshots_expiry")):
        if v.get(var):
            config[key] = v[var]
    return {
        "name": v.get("instance_name", host),
        "project": project_of(domain, d),
        "type": v.get("instance_type", MACHINE_TYPE),
        "image": image_of(v, image),
        "profiles": plain(_or(v, "instance_profiles", list(MACHINE_PROFILES))),
        "description": v.get("instance_description", ""),
        "config": config,
        "devices": devices,
        "ip": ip,
        "target": member_of(v),
    }


def instances(hosts: Iterable[str], hostvars: Mapping[str, Any], domains: Mapping[str, Any],
              image: str, admin_domain: str = "",
              admin_device: Mapping[str, str] | None = None,
              gpu: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The instances of ``hosts``: eth0 with the static address, the protection flag from
    ``instance_ephemeral``, the snapshot keys, ``admin_device`` for ``admin_domain``, and
    for a GPU instance what :func:`gpu_additions` adds (``gpu``: userspace, driver_dir)."""
    return [_instance(host, v, domain, domains[domain], image,
                      admin_device if admin_domain and domain == admin_domain else None, gpu)
            for host, v, domain in _declared_hosts(hosts, hostvars, domains)]


def owned_names(domains: Mapping[str, Any]) -> dict[str, list[str]]:
    """The bridges, projects and profiles the object roles reconcile for ``domains``: the
    names the ownership check guards (ADR-021); instances: :func:`host_instance_refs`."""
    return {
        "networks": [network_of(name, d) for name, d in domains.items()],
        "projects": [project_of(name, d) for name, d in domains.items()],
        "profiles": profile_refs(domains),
    }


def host_instance_refs(hosts: Iterable[str], hostvars: Mapping[str, Any],
                       domains: Mapping[str, Any]) -> list[str]:
    """The instances the instances role reconciles for ``hosts``, as ``project/name``."""
    return [f"{project_of(domain, domains[domain])}/{v.get('instance_name', host)}"
            for host, v, domain in _declared_hosts(hosts, hostvars, domains)]


# -- existing instances addressed by host (provisioning, snapshots) ------------------------

def instance_target(host: str, v: Mapping[str, Any], domains: Mapping[str, Any]) -> dict[str, Any]:
    """Where a host's instance lives, and whether infra.yml still declares it (ADR-053).

    The project is the connection's ``ansible_incus_project`` (group_vars/<domain>.yml),
    else the domain's project, else the domain name, else Incus's ``default``.
    """
    domain = v.get("instance_domain", "")
    d = domains.get(domain) if domain and isinstance(domain, str) else None
    name = v.get("instance_name", host)
    if "ansible_incus_project" in v:
        project = v["ansible_incus_project"]
    else:
        project = project_of(domain, d) if d is not None else domain or "default"
    return {"host": host, "name": name, "project": project,
            "declared": d is not None and name in (d.get("machines") or [])}


def instance_targets(hosts: Iterable[str], hostvars: Mapping[str, Any],
                     domains: Mapping[str, Any]) -> list[dict[str, Any]]:
    """:func:`instance_target` of every host, in the given order."""
    return [instance_target(host, hostvars[host], domains) for host in hosts]
