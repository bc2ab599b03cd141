"""Small pure checks on single values (names, addresses, schedules, sizes).

Each returns ``None`` when the value is fine, else a short reason.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from anklume.model import network_name

IFNAME_MAX = 15  # Linux's IFNAMSIZ less the final NUL
DOMAIN_MAX = IFNAME_MAX - len(network_name(""))  # the domain's bridge must fit
MACHINE_MAX = 63  # Incus instance names are DNS labels
RESERVED_DOMAINS = frozenset({"default", "all", "ungrouped"})

_DOMAIN_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_MACHINE_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_PROFILE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_ROLE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Incus names cluster members like hosts: letters, digits, dots and hyphens.
_MEMBER_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_BASE_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})$")
_RANGE_RE = re.compile(r"^(\d{1,3})-(\d{1,3})$")
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*/,?-]+$")
_CRON_ALIASES = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually",
                           "@midnight"})
_EXPIRY_RE = re.compile(r"^(\d+[MHhdwmy])+$")
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKMGTPE]i?B|B)?$")
_MEM_UNITS = {
    None: 1, "B": 1,
    "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
    "EB": 10**18,
    "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50,
    "EiB": 2**60,
}
_CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
GIB = 2**30


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if one is close enough."""
    pool = list(choices)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return match[0] if match else None


def _shown(name: str) -> str:
    """NAME quoted for a message: a control character is escaped, so the message stays one
    line whatever the file holds."""
    return f"'{name}'" if name.isprintable() else repr(name)


def domain_name(name: str) -> str | None:
    if name in RESERVED_DOMAINS:
        return f"{_shown(name)} is reserved (Incus/Ansible use it)"
    if len(name) > DOMAIN_MAX:
        return (f"{_shown(name)} is {len(name)} characters, more than {DOMAIN_MAX} "
                f"(the bridge {network_name(name)} must fit Linux's {IFNAME_MAX}-character "
                "interface names)")
    if not _DOMAIN_RE.match(name):
        return f"{_shown(name)} is not a lowercase DNS label"
    return None


def project_name(name: str) -> str | None:
    """Why ``name`` cannot be a project_name (the owner marker): a domain's rule, any length
    up to a DNS label's, and no reserved word (it names no Ansible group)."""
    if len(name) > MACHINE_MAX:
        return f"{_shown(name)} is {len(name)} characters, more than {MACHINE_MAX}"
    if not _DOMAIN_RE.match(name):
        return f"{_shown(name)} is not a lowercase DNS label"
    return None


def machine_name(name: str) -> str | None:
    if len(name) > MACHINE_MAX:
        return f"{_shown(name)} is {len(name)} characters, more than Incus's {MACHINE_MAX}"
    if not _MACHINE_RE.match(name):
        return f"{_shown(name)} is not a valid instance name"
    return None


def profile_name(name: str) -> str | None:
    if len(name) > MACHINE_MAX or not _PROFILE_RE.match(name):
        return f"'{name}' is not a DNS-safe profile name"
    return None


def member_name(name: str) -> str | None:
    """Why ``name`` cannot be an Incus cluster member's name, or None."""
    if len(name) > MACHINE_MAX or not _MEMBER_RE.match(name):
        return "use letters, digits, dots and hyphens (at most 63)"
    return None


def role_name(name: str) -> str | None:
    if not _ROLE_RE.match(name):
        return f"'{name}' is not a valid Ansible role name"
    return None


def base_subnet(value: str) -> str | None:
    m = _BASE_RE.match(value)
    if not m or any(int(o) > 255 for o in m.groups()):
        return f"'{value}' is not two octets like \"10.100\""
    return None


def dhcp_range(value: str) -> tuple[int, int] | None:
    m = _RANGE_RE.match(value)
    if not m:
        return None
    lo, hi = int(m.group(1)), int(m.group(2))
    if not 1 <= lo <= hi <= 253:
        return None
    return lo, hi


def cron(value: str) -> str | None:
    if value in _CRON_ALIASES:
        return None
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        return f"'{value}' is not a 5-field cron expression or @hourly/@daily/..."
    return None


def expiry(value: str) -> str | None:
    if not _EXPIRY_RE.match(value):
        return f"'{value}' is not a duration like 2w, 3d or 1d6h"
    return None


def memory_bytes(value: str) -> int | None:
    """Bytes of an Incus size (``8GiB``, ``512MB``, ``1073741824``); None if not a size."""
    m = _MEM_RE.match(value.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _MEM_UNITS[m.group(2)])


def cpu_count(value: str) -> int | None:
    """CPUs of an Incus ``limits.cpu`` (a count, or a CPU set ``0-3``/``1,3``)."""
    v = value.strip()
    if v.isdigit():
        return int(v)
    if _CPUSET_RE.match(v):
        total = 0
        for part in v.split(","):
            lo, _, hi = part.partition("-")
            total += (int(hi) - int(lo) + 1) if hi else 1
        return max(total, 0)
    return None


def port(value: object) -> int | str | None:
    """Normalised port (int) or range ("a-b"); None when invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 65535 else None
    if isinstance(value, str):
        v = value.strip()
        if v.isdigit():
            return port(int(v))
        m = re.match(r"^(\d+)-(\d+)$", v)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if 1 <= lo < hi <= 65535:
                return f"{lo}-{hi}"
    return None
