"""A domain's resource budget (``limits:``, ADR-086): sizes, sums and fit checks.

``limits: {cpu, memory, processes, disk}`` on a domain become its Incus project's aggregate
``limits.cpu``, ``limits.memory``, ``limits.processes`` and ``limits.disk``. Incus 6.0 then
refuses any instance of that project that does not state its own share (an instance's
``limits.cpu``/``limits.memory``/``limits.processes``, its root disk's ``size``), and any
creation or change that would take the sum past the budget. So each machine infra.yml
declares in such a domain states its share, and their sum must fit (checked at sync, one
line per problem); the machines anklume writes itself get a documented default:
sys-firewall (:data:`FIREWALL`) and disposables (:func:`disposable_config`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from anklume import checks
from anklume.model import Domain, Infra, Machine
from anklume.yamlload import Path

Report = Callable[[Path, str, str], None]

KEYS = ("cpu", "memory", "processes", "disk")
SIZES = ("memory", "disk")
# What a disposable gets in a limited domain, per limited key (disk: its root disk's size).
DISPOSABLE = {"memory": "512MiB", "cpu": "1", "processes": "500", "disk": "2GiB"}
# What sys-firewall (a vm, firewall_mode vm) gets: a vm's smallest memory, one CPU.
FIREWALL = {"memory": "1GiB", "cpu": "1"}
# Incus adds the filesystem volume of a vm's root disk (size.state, default 500MiB) to
# the disk it counts against limits.disk (Incus 6.0 permissions.go getInstanceLimits).
VM_STATE_SIZE = 500 * 2**20
_EXAMPLE = {"memory": '"4GiB"', "disk": '"20GiB"', "cpu": "4", "processes": "2000"}
# A machine's share, as the fix of a missing one writes it.
_SHARE = {"memory": '"1GiB"', "cpu": '"1"', "processes": '"500"'}


def size(value: object) -> int | None:
    """Bytes of a budget or share like ``4GiB``/``512MiB`` (a plain number is bytes);
    None when it is no positive size (a percentage is not one: Incus cannot add it up)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    found = checks.memory_bytes(str(value))
    return found if found else None


def count(value: object) -> int | None:
    """A positive whole number (cpu, processes), written as a number or a digit string;
    None otherwise (a CPU set like ``0-3`` is not one: Incus refuses pinning there)."""
    if isinstance(value, bool):
        return None
    text = str(value).strip() if isinstance(value, int | str) else ""
    return int(text) if text.isdigit() and int(text) > 0 else None


def amount(key: str, value: object) -> int | None:
    return size(value) if key in SIZES else count(value)


def show(key: str, total: int) -> str:
    if key not in SIZES:
        return str(total)
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if total % factor == 0:
            return f"{total // factor}{unit}"
    return f"{total}B"


def parse(raw: Any, path: Path, err: Report) -> dict[str, str]:
    """A domain's ``limits:`` (already known to be a mapping), normalised to Incus strings."""
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        sub = (*path, str(key))
        if key not in KEYS:
            guess = checks.did_you_mean(str(key), KEYS)
            hint = f"did you mean '{guess}'? " if guess else ""
            err(sub, f"unknown limit {key!r}", f"{hint}use one of: {', '.join(KEYS)}")
            continue
        if amount(key, value) is None:
            what = ("a size like \"4GiB\" or \"512MiB\"" if key in SIZES
                    else "a positive whole number")
            err(sub, f"{key} {value!r} is not {what}", f"write e.g. {key}: {_EXAMPLE[key]}")
            continue
        out[key] = str(value).strip()
    return out


def _root_size(devices: Mapping[str, Mapping[str, str]]) -> str | None:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and dev.get("size"):
            return dev["size"]
    return None


def share(m: Machine, d: Domain, key: str) -> str | None:
    """Machine M's own value for domain limit KEY, as Incus sees it: its config (its root
    disk's size for disk), else the last of its profiles that sets it; None when unset."""
    profiles = [d.profiles[p] for p in m.profiles if p in d.profiles]
    if key == "disk":
        for devices in (m.devices, *(p.devices for p in reversed(profiles))):
            found = _root_size(devices)
            if found:
                return found
        return None
    name = f"limits.{key}"
    for config in (m.config, *(p.config for p in reversed(profiles))):
        if config.get(name):
            return config[name]
    return None


def preload(raw_domain: Any) -> int:
    """Disposables a domain keeps ready (``disposables: {preload: N}``), read from the raw
    domain and defensively: anything else is 0."""
    disp = raw_domain.get("disposables") if isinstance(raw_domain, dict) else None
    value = disp.get("preload") if isinstance(disp, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def disposable_config(domain_limits: Mapping[str, str]) -> dict[str, str]:
    """The config keys a disposable gets in a domain with DOMAIN_LIMITS: :data:`DISPOSABLE`
    for each key the domain limits but disk (a root disk size: :func:`disposable_root_size`)."""
    return {f"limits.{k}": DISPOSABLE[k] for k in KEYS if k in domain_limits and k != "disk"}


def disposable_root_size(domain_limits: Mapping[str, str]) -> str | None:
    """The root disk ``size`` a disposable gets where the domain limits disk, else None."""
    return DISPOSABLE["disk"] if "disk" in domain_limits else None


def complete_firewall(m: Machine, d: Domain) -> None:
    """sys-firewall is anklume's: in a limited admin domain it gets :data:`FIREWALL`."""
    for key, value in FIREWALL.items():
        if key in d.limits and share(m, d, key) is None:
            m.config[f"limits.{key}"] = value


def check(infra: Infra, raw_domains: Mapping[str, Any], err: Report,
          firewall_name: str = "") -> None:
    """Every machine of a limited domain states a share Incus can add up, and the shares
    (with the preloaded disposables') fit the budget."""
    for d in infra.domains:
        if not d.limits:
            continue
        dpath: Path = ("domains", d.name)
        ready = preload(raw_domains.get(d.name))
        for key, budget in d.limits.items():
            total = ready * (amount(key, DISPOSABLE[key]) or 0)
            for m in d.machines:
                if m.name == firewall_name:
                    complete_firewall(m, d)
                got = _machine_share(m, d, key, err)
                if got is not None:
                    total += got
            limit = amount(key, budget) or 0
            if total > limit:
                extra = (f", with {ready} preloaded disposable(s) at {DISPOSABLE[key]} each"
                         if ready else "")
                err((*dpath, "limits", key),
                    f"the machines of domain {d.name} take {show(key, total)} of {key}{extra}, "
                    f"more than its budget {budget}",
                    f"raise limits.{key} of the domain or lower the machines' shares")


def _machine_share(m: Machine, d: Domain, key: str, err: Report) -> int | None:
    mpath: Path = ("domains", d.name, "machines", m.name)
    if key == "processes" and m.type == "vm":
        err(mpath, f"machine {m.name} is a vm in a domain that limits processes: Incus 6.0 "
            "wants limits.processes on every instance of such a project and refuses it on "
            "a vm", "remove processes from the domain's limits or make the machine type lxc")
        return None
    value = share(m, d, key)
    if value is None:
        if key == "disk":
            fix = ('give it a root disk size: devices: {root: {type: disk, path: /, pool: '
                   'default, size: "4GiB"}}')
        else:
            fix = f"add config: {{limits.{key}: {_SHARE[key]}}} (its share of the budget)"
        what = "root disk size" if key == "disk" else f"limits.{key}"
        err(mpath, f"machine {m.name} states no {what} while its domain limits {key} (Incus "
            "refuses such an instance)", fix)
        return None
    got = amount(key, value)
    if got is None:
        where = (*mpath, "config", f"limits.{key}") if key != "disk" else mpath
        err(where, f"{value!r} is not an amount Incus can add up against the domain's {key} "
            "budget (no percentage, no CPU set)",
            'write a size like "512MiB"' if key in SIZES else 'write a count like "2"')
        return None
    if m.type == "vm" and key == "disk":
        got += VM_STATE_SIZE
    return got
