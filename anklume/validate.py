"""Validate a loaded infra.yml and build the normalised :class:`Infra`.

All problems of a file are collected, then raised together as one
:class:`InputError`; warnings are returned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from anklume import (
    checks,
    colors,
    disposables_check,
    egress,
    egress_check,
    expand,
    file_policies,
    firewall,
    limits,
    schema,
)
from anklume.errors import InputError, Problem
from anklume.model import (
    EGRESS_NONE,
    GUI_DEVICE,
    GUI_IMAGE_SUFFIX,
    HOST,
    Config,
    Devices,
    Domain,
    Infra,
    Machine,
    Policy,
    Profile,
    machine_ephemeral,
    uses_gpu,
)
from anklume.roles import RolePaths, search_paths
from anklume.schema import default
from anklume.shipped_profiles import shipped
from anklume.yamlload import Document, Path, dotted

_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("global", "gpu_policy"): ("exclusive", "shared"),
    ("global", "firewall_mode"): ("host", "vm"),
    ("machine", "type"): ("lxc", "vm"),
    ("network_policy", "protocol"): ("tcp", "udp", "icmp", "any"),
}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "list of strings": "a list of strings",
    "list of ports": "a list of ports",
    "list of policies": "a list of mappings",
    "boolean or mapping": "true, false or a mapping",
    "open, none or a list": "open, none or a list of destinations",
    "none or a list": "none or a list of destinations",
}


def kind(value: object) -> str:
    """Human name of a YAML value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _domain_value(domain: dict[str, Any], name: str) -> Any:
    """A machine key whose default is its domain's (schema: "domain's NAME")."""
    return domain.get(name, default("domain", name))


def incus_string(value: object) -> str | None:
    """Incus wants strings: booleans and numbers convert; anything else is None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


class _Validator:
    def __init__(self, doc: Document, roles: RolePaths | None = None) -> None:
        self.doc = doc
        # Where machines' roles are looked up; None checks only their names' form.
        self.roles = roles
        self.known_roles: dict[str, bool] = {}
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.base_ok = True
        # Paths of domains a template generated -> where the template wrote them.
        self.aliases: dict[Path, expand.Alias] = {}
        # (domain, profile) pairs copied from anklume/shipped_profiles.py.
        self.shipped_added: set[tuple[str, str]] = set()

    # -- reporting ---------------------------------------------------------
    def alias(self, path: Path) -> expand.Alias | None:
        """Where a generated domain's ``path`` was written (longest known prefix)."""
        for i in range(len(path), 1, -1):
            found = self.aliases.get(path[:i])
            if found is not None:
                return expand.Alias((*found.path, *path[i:]), found.domain)
        return None

    def line(self, path: Path) -> int | None:
        found = self.alias(path)
        return self.doc.line(found.path if found else path)

    def problem(self, path: Path, what: str, fix: str) -> Problem:
        found = self.alias(path)
        if found is not None:
            return Problem(self.doc.filename, self.doc.line(found.path), dotted(found.path),
                           f"{what} (in {found.domain})", fix)
        return Problem(self.doc.filename, self.doc.line(path), dotted(path), what, fix)

    def err(self, path: Path, what: str, fix: str) -> None:
        self.errors.append(self.problem(path, what, fix))

    def warn(self, path: Path, what: str, fix: str) -> None:
        self.warnings.append(self.problem(path, what, fix))

    # -- structure ---------------------------------------------------------
    def section(self, value: Any, section: str, path: Path) -> dict[str, Any]:
        """Check keys and types of one mapping; return only the well-typed values."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.err(path, f"expected a mapping, got {kind(value)} {_show(value)}",
                     "write key: value pairs under it")
            return {}
        spec = schema.keys(section)
        out: dict[str, Any] = {}
        for key, val in value.items():
            sub = (*path, key if isinstance(key, str) else str(key))
            if isinstance(key, str) and key in schema.RETIRED.get(section, {}):
                self.warn(sub, f"no longer read ({schema.RETIRED[section][key]})", "remove it")
                continue
            if not isinstance(key, str) or key not in spec:
                guess = checks.did_you_mean(str(key), spec) if isinstance(key, str) else None
                fix = (f"did you mean '{guess}'?" if guess
                       else "remove it or use one of: " + ", ".join(spec))
                self.err(sub, f"unknown key {_show(key)}", fix)
                continue
            good = self.typed(val, spec[key], section, sub)
            if good is not None:
                out[key] = good
        for key in spec.values():
            if key.default == schema.REQUIRED and key.name not in value:
                self.err(path, f"missing required key '{key.name}'", f"add it, e.g. {key.example}")
        return out

    def typed(self, val: Any, key: schema.Key, section: str, path: Path) -> Any:
        t = key.type
        ok: bool
        if t == "string":
            ok = isinstance(val, str)
        elif t == "integer":
            ok = isinstance(val, int) and not isinstance(val, bool)
        elif t == "boolean":
            ok = isinstance(val, bool)
        elif t == "boolean or mapping":
            ok = isinstance(val, bool | dict)
        elif t.endswith("or a list"):  # egress: a word or its rules (anklume/egress_check.py)
            ok = isinstance(val, str | list)
        elif t.startswith("mapping"):
            val = {} if val is None else val
            ok = isinstance(val, dict)
        else:  # lists
            val = [] if val is None else val
            ok = isinstance(val, list)
            if ok and t == "list of strings":
                for i, item in enumerate(val):
                    if not isinstance(item, str):
                        self.err((*path, i), f"expected a string, got {kind(item)} "
                                 f"{_show(item)}", f"write a list of names, e.g. {key.example}")
                        ok = False
                if not ok:
                    return None
        if not ok:
            want = _TYPE_WORDS.get(t, "a mapping")
            self.err(path, f"expected {want}, got {kind(val)} {_show(val)}",
                     f"write it like {key.example}")
            return None
        allowed = _ENUMS.get((section, key.name))
        if allowed and val not in allowed:
            guess = checks.did_you_mean(val, allowed)
            hint = f"did you mean '{guess}'? " if guess else ""
            self.err(path, f"{_show(val)} is not one of {', '.join(allowed)}",
                     f"{hint}use one of: {', '.join(allowed)}")
            return None
        return val

    def config(self, raw: dict[Any, Any], path: Path) -> Config:
        out: Config = {}
        for key, val in raw.items():
            sub = (*path, str(key))
            if not isinstance(key, str) or not key:
                self.err(sub, f"config key {_show(key)} is not a string",
                         "use Incus key names like limits.cpu")
                continue
            text = incus_string(val)
            if text is None:
                self.err(sub, f"config value must be a string, got {kind(val)} {_show(val)}",
                         f'write it as a string, e.g. {key}: "value"')
                continue
            out[key] = text
        return out

    def devices(self, raw: dict[Any, Any], path: Path) -> Devices:
        out: Devices = {}
        for name, dev in raw.items():
            sub = (*path, str(name))
            if not isinstance(name, str) or not name:
                self.err(sub, f"device name {_show(name)} is not a string",
                         "name devices like gpu or data")
                continue
            if not isinstance(dev, dict):
                self.err(sub, f"device must be a mapping, got {kind(dev)} {_show(dev)}",
                         "write it like {type: gpu}")
                continue
            conf = self.config(dev, sub)
            if "type" not in dev:
                self.err(sub, f"device '{name}' has no type",
                         "add type: (gpu, disk, nic, proxy, ...)")
                continue
            out[name] = conf
        return out

    # -- semantics ---------------------------------------------------------
    def run(self) -> Infra:
        data = self.doc.data
        if data is None:
            self.err((), "the file is empty", "describe at least `domains:` (see "
                     "docs/infra-format.md)")
            raise InputError(self.errors)
        if not isinstance(data, dict):
            self.err((), f"the top level must be a mapping, got {kind(data)}",
                     "start with project_name:, global: and domains: keys")
            raise InputError(self.errors)
        top = self.section(data, "top", ())
        infra = Infra()
        if isinstance(top.get("project_name"), str):
            infra.project_name = self.project_name(top["project_name"])
        raw_global = data.get("global")
        glob_raw: dict[Any, Any] = raw_global if isinstance(raw_global, dict) else {}
        self.global_(self.section(top.get("global"), "global", ("global",)), infra)
        if "base_subnet" in glob_raw and infra.base_subnet != glob_raw["base_subnet"]:
            self.base_ok = False  # reported already; do not check IPs against a guess
        domains = top.get("domains", {})
        generated = expand.expand(top.get("domain_templates"), domains,
                                  infra.base_subnet if self.base_ok else None, self.err)
        self.aliases = generated.aliases
        infra.domain_templates = generated.members
        if "domains" in top and not domains and not generated.domains:
            self.nothing_declared(top.get("allow_empty", default("top", "allow_empty")))
        self.domains({**domains, **generated.domains}, infra)
        self.cross_checks(infra)
        disposables_check.reserve(infra, self.err)
        self.template_names(infra)
        self.admin_domain(glob_raw, infra)
        colors.fill_defaults(infra)  # after admin_domain: black is its default (ADR-090)
        firewall.complete(infra, domains, self.err, self.warn)  # firewall_mode vm (ADR-066)
        # Domain budgets (ADR-086), after sys-firewall exists: it gets a default share.
        limits.check(infra, {**domains, **generated.domains}, self.err,
                     firewall.NAME if infra.firewall_mode == "vm" else "")
        egress.complete(infra, self.err)  # via gateways get their NICs (ADR-093)
        self.policies(top.get("network_policies", default("top", "network_policies")), infra)
        file_policies.parse(top.get("file_policies", default("top", "file_policies")), infra,
                            self.section, self.err)  # make copy across domains (ADR-085)
        file_policies.parse(top.get("clipboard_policies", default("top", "clipboard_policies")),
                            infra, self.section, self.err, "clipboard_policies")  # make clip
        if self.errors:
            raise InputError(_once_per_template_line(self.errors))
        return infra

    def project_name(self, name: str) -> str:
        reason = checks.project_name(name)
        if reason:
            self.err(("project_name",), f"invalid project_name: {reason}",
                     "use lowercase letters, digits and hyphens, starting with a letter "
                     "(it marks every Incus object as this file's: user.anklume.owner)")
            return str(default("top", "project_name"))
        return name

    def nothing_declared(self, allowed: bool) -> None:
        """No domain at all: a sync would take every domain out of the inventory, which is
        seldom what a half-edited or truncated file means."""
        if not allowed:
            self.err(("domains",), "no domain is declared: a sync would take every domain "
                     "out of the inventory",
                     "to remove everything, run `make destroy FORCE=1` while the domains are "
                     "still declared, then empty the file with `allow_empty: true` and run "
                     "`make sync-clean FORCE=1`; add `allow_empty: true` to sync it as is")

    def template_names(self, infra: Infra) -> None:
        machines = {m.name for d in infra.domains for m in d.machines}
        for name in infra.domain_templates:
            if name in machines:
                self.err(("domain_templates", name), f"template '{name}' has the name of a "
                         "machine", "rename one (Ansible hosts and groups share one namespace)")

    def global_(self, g: dict[str, Any], infra: Infra) -> None:
        for name in ("default_os_image", "default_user", "gpu_policy",
                     "firewall_mode", "incus_remote", "isolation", "snapshot_before_apply"):
            if name in g:
                setattr(infra, name, g[name])
        if "snapshot_before_apply_keep" in g:
            keep = g["snapshot_before_apply_keep"]
            if not 1 <= keep <= 10:
                self.err(("global", "snapshot_before_apply_keep"), f"{keep} is outside 1-10",
                         "keep from 1 to 10 pre-apply snapshots per instance")
            else:
                infra.snapshot_before_apply_keep = keep
        if "base_subnet" in g:
            reason = checks.base_subnet(g["base_subnet"])
            if reason:
                self.base_ok = False
                self.err(("global", "base_subnet"), reason, 'write two octets, e.g. "10.100"')
            else:
                infra.base_subnet = g["base_subnet"]
        if "dhcp_range" in g:
            rng = checks.dhcp_range(g["dhcp_range"])
            if rng is None:
                self.err(("global", "dhcp_range"),
                         f"{_show(g['dhcp_range'])} is not a range of host octets",
                         'write "LOW-HIGH" with 1 <= LOW <= HIGH <= 253, e.g. "100-199"')
            else:
                infra.dhcp_range = rng
        if "disposable_range" in g:
            rng = disposables_check.disposable_range(g["disposable_range"])
            if rng is None:
                self.err(("global", "disposable_range"),
                         f"{_show(g['disposable_range'])} is not a range of host octets",
                         'write "LOW-HIGH" with 1 <= LOW <= HIGH <= 252, e.g. "200-249"')
            else:
                infra.disposable_range = rng
        if not infra.default_os_image:
            self.err(("global", "default_os_image"), "empty image name",
                     "name an image alias, e.g. anklume/debian-12")

    def domains(self, raw: dict[Any, Any], infra: Infra) -> None:
        subnet_owner: dict[int, str] = {}
        for name, value in raw.items():
            path: Path = ("domains", str(name))
            if not isinstance(name, str):
                self.err(path, f"domain name {_show(name)} is not a string",
                         "use a lowercase name like pro")
                continue
            reason = checks.domain_name(name)
            if reason:
                self.err(path, f"invalid domain name: {reason}",
                         f"use at most {checks.DOMAIN_MAX} lowercase letters, digits and "
                         "hyphens, starting with a letter")
            d = self.section(value, "domain", path)
            domain = Domain(name=name, subnet_id=-1,
                            description=d.get("description", default("domain", "description")),
                            ephemeral=d.get("ephemeral", default("domain", "ephemeral")),
                            nat=d.get("nat"))
            if "target" in d:
                domain.target = self.target(d["target"], (*path, "target"))
            if "color" in d:
                domain.color = self.color(d["color"], (*path, "color"))
            if "limits" in d:
                domain.limits = limits.parse(d["limits"], (*path, "limits"), self.err)
            if "egress" in d:  # the way out (ADR-093)
                domain.egress = egress_check.parse(d["egress"], (*path, "egress"),
                                                   self.section, self.err) or domain.egress
            domain.via = d.get("via", "")
            if "disposables" in d:
                domain.disposables = disposables_check.parse(
                    d["disposables"], (*path, "disposables"), self.section, self.err)
            sid = d.get("subnet_id")
            if sid is not None:
                if not 0 <= sid <= 254:
                    self.err((*path, "subnet_id"), f"subnet_id {sid} is outside 0-254",
                             "use a number from 0 to 254")
                elif sid in subnet_owner:
                    used = set(subnet_owner)
                    free = next(i for i in range(255) if i not in used) if len(used) < 255 else None
                    self.err((*path, "subnet_id"),
                             f"subnet_id {sid} is already used by domain {subnet_owner[sid]}",
                             "give each domain its own subnet_id"
                             + (f" (e.g. {free})" if free is not None else ""))
                else:
                    subnet_owner[sid] = name
                    domain.subnet_id = sid
            for pname, praw in d.get("profiles", default("domain", "profiles")).items():
                ppath = (*path, "profiles", str(pname))
                if not isinstance(pname, str) or checks.profile_name(pname):
                    self.err(ppath, f"invalid profile name {_show(pname)}",
                             "use lowercase letters, digits and hyphens")
                    continue
                if pname == "default":
                    self.err(ppath, "profile 'default' is Incus's own",
                             "give your profile another name")
                    continue
                p = self.section(praw, "profile", ppath)
                domain.profiles[pname] = Profile(
                    pname, p.get("description", default("profile", "description")),
                    self.config(p.get("config", default("profile", "config")), (*ppath, "config")),
                    self.devices(p.get("devices", default("profile", "devices")),
                                 (*ppath, "devices")))
            self.snapshots(d, path)
            for mname, mraw in d.get("machines", default("domain", "machines")).items():
                machine = self.machine(domain, mname, mraw, d, infra)
                if machine is not None:
                    domain.machines.append(machine)
            infra.domains.append(domain)

    def machine(self, domain: Domain, name: Any, raw: Any, d: dict[str, Any],
                infra: Infra) -> Machine | None:
        path: Path = ("domains", domain.name, "machines", str(name))
        if not isinstance(name, str):
            self.err(path, f"machine name {_show(name)} is not a string",
                     "use a lowercase name like pro-dev")
            return None
        reason = checks.machine_name(name)
        if reason:
            self.err(path, f"invalid machine name: {reason}",
                     f"use at most {checks.MACHINE_MAX} lowercase letters, digits and hyphens, "
                     "starting with a letter and not ending with a hyphen")
        m = self.section(raw, "machine", path)
        machine = Machine(
            name=name, domain=domain.name,
            description=m.get("description", default("machine", "description")),
            type=m.get("type", default("machine", "type")),
            os_image=m.get("os_image", infra.default_os_image + (
                GUI_IMAGE_SUFFIX if m.get("gui") is True else "")),
            config=self.config(m.get("config", default("machine", "config")), (*path, "config")),
            devices=self.devices(m.get("devices", default("machine", "devices")),
                                 (*path, "devices")),
            gpu=m.get("gpu", default("machine", "gpu")),
            gui=m.get("gui", default("machine", "gui")),
            audio=m.get("audio", default("machine", "audio")),
            microphone=m.get("microphone", default("machine", "microphone")),
            ephemeral=machine_ephemeral(domain, m.get("ephemeral")),
            snapshots_schedule=m.get("snapshots_schedule", _domain_value(d, "snapshots_schedule")),
            snapshots_expiry=m.get("snapshots_expiry", _domain_value(d, "snapshots_expiry")),
            allow_spoofing=m.get("allow_spoofing", default("machine", "allow_spoofing")),
            target=domain.target,
        )
        if "target" in m:
            machine.target = self.target(m["target"], (*path, "target"))
        if "os_image" in m and not m["os_image"]:
            self.err((*path, "os_image"), "empty image name",
                     "name an image alias or remove the key")
        self.profiles_of(machine, m.get("profiles"), domain, path)
        for i, role in enumerate(m.get("roles", default("machine", "roles"))):
            reason = checks.role_name(role)
            if reason:
                self.err((*path, "roles", i), reason, "use a role directory name like base_system")
            elif role in machine.roles:
                self.err((*path, "roles", i), f"role '{role}' is listed twice", "list it once")
            else:
                self.role_exists(role, (*path, "roles", i))
                machine.roles.append(role)
        self.snapshots(m, path)
        if "ip" in m:
            machine.ip = self.ip(m["ip"], (*path, "ip"), domain, infra)
        if "egress" in m:  # narrows the domain's (ADR-093)
            machine.egress = egress_check.parse(m["egress"], (*path, "egress"), self.section,
                                                self.err, words=(EGRESS_NONE,))
        if machine.type == "vm":
            self.vm_limits(machine, path)
            if machine.gui:
                self.err((*path, "gui"), "gui apps are shown from lxc machines only: a vm "
                         "has no display path yet (ADR-091)",
                         "remove `gui: true`, or make the machine `type: lxc`")
        if machine.audio and not machine.gui:
            self.err((*path, "audio"), "audio is forwarded by a gui session: the machine "
                     "does not declare gui: true", "add `gui: true`, or remove `audio: true`")
        if machine.microphone and not machine.audio:
            self.err((*path, "microphone"), "the microphone goes with the sound: the machine "
                     "does not declare audio: true",
                     "add `audio: true`, or remove `microphone: true`")
        if GUI_DEVICE in machine.devices:
            self.err((*path, "devices", GUI_DEVICE), f"device name {GUI_DEVICE} is make gui's "
                     "(the session's proxy device, ADR-091)", "give the device another name")
        return machine

    def role_exists(self, role: str, path: Path) -> None:
        """A role Ansible cannot find would stop the apply half-way: refuse it at sync."""
        if self.roles is None:
            return
        if role not in self.known_roles:
            self.known_roles[role] = self.roles.exists(role)
        if self.known_roles[role]:
            return
        guess = checks.did_you_mean(role, self.roles.names_like(role))
        hint = f"did you mean '{guess}'? " if guess else ""
        self.err(path, f"unknown role '{role}'",
                 f"{hint}name a folder of roles/ or of a roles_path in ansible.cfg, or a "
                 "collection's role as namespace.collection.role")

    def target(self, value: str, path: Path) -> str:
        """A cluster member name (Incus names members like hosts), or "" for the scheduler."""
        reason = checks.member_name(value) if value else None
        if reason:
            self.err(path, f"invalid cluster member name {_show(value)}: {reason}",
                     'name a member of `incus cluster list`, e.g. target: node1, or "" to '
                     "let Incus place it")
            return ""
        return value

    def color(self, value: str, path: Path) -> str:
        """A domain's colour as kept (label, or lowercase hex); "" (the default) if wrong."""
        wrong = colors.problem(value)
        if wrong:
            self.err(path, *wrong)
            return ""
        return colors.normal(value)

    def snapshots(self, values: dict[str, Any], path: Path) -> None:
        schedule = values.get("snapshots_schedule", default("domain", "snapshots_schedule"))
        if schedule and (reason := checks.cron(schedule)):
            self.err((*path, "snapshots_schedule"), reason, 'use e.g. "0 3 * * *" or @daily')
        expiry = values.get("snapshots_expiry", default("domain", "snapshots_expiry"))
        if expiry and (reason := checks.expiry(expiry)):
            self.err((*path, "snapshots_expiry"), reason,
                     "use a number and unit, e.g. 2w, 3d, 12h or 1d6h")

    def profiles_of(self, machine: Machine, raw: list[str] | None, domain: Domain,
                    path: Path) -> None:
        if raw is None:
            return
        seen: list[str] = []
        for i, pname in enumerate(raw):
            if pname in seen:
                self.err((*path, "profiles", i), f"profile '{pname}' is listed twice",
                         "list it once")
                continue
            # A shipped profile the domain does not define itself (ADR-064).
            own = pname in domain.profiles and (domain.name, pname) not in self.shipped_added
            ship = None if own else shipped(pname)
            if ship:
                kind, profile = ship
                if machine.type != kind:
                    self.err((*path, "profiles", i),
                             f"profile '{pname}' is for type: {kind} machines, and "
                             f"{machine.name} is type: {machine.type}",
                             "use nvidia-compute for a container and gpu-passthrough for a vm")
                    continue
                domain.profiles[pname] = profile
                self.shipped_added.add((domain.name, pname))
            if pname != "default" and pname not in domain.profiles:
                known = ["default", *domain.profiles]
                guess = checks.did_you_mean(pname, known)
                hint = f"did you mean '{guess}'? " if guess else ""
                self.err((*path, "profiles", i),
                         f"profile '{pname}' is not defined in domain {domain.name}",
                         f"{hint}define it under domains.{domain.name}.profiles or use one of: "
                         + ", ".join(known))
                continue
            seen.append(pname)
        machine.profiles = ["default", *[p for p in seen if p != "default"]]

    def ip(self, value: str, path: Path, domain: Domain, infra: Infra) -> str:
        if value == "":
            return ""
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            self.err(path, f"{_show(value)} is not an IPv4 address",
                     'write four numbers 0-255, e.g. "10.100.2.10", or remove it for DHCP')
            return ""
        if not self.base_ok or domain.subnet_id < 0:
            return str(addr)
        net = ipaddress.IPv4Network(infra.subnet(domain))
        prefix = f"{infra.base_subnet}.{domain.subnet_id}"
        use = f"use an address in {prefix}.1-253"
        host = int(addr) - int(net.network_address)
        lo, hi = infra.dhcp_range
        if addr not in net:
            self.err(path, f"{addr} is outside the domain subnet {net}", use)
        elif host == 0:
            self.err(path, f"{addr} is the network address of {net}", use)
        elif host == 254:
            self.err(path, f"{addr} is the gateway address of domain {domain.name}", use)
        elif host == 255:
            self.err(path, f"{addr} is the broadcast address of {net}", use)
        elif lo <= host <= hi:
            self.err(path, f"{addr} is inside the DHCP range {prefix}.{lo}-{prefix}.{hi}",
                     f"use a host number outside {lo}-{hi} (or change global.dhcp_range)")
        else:
            return str(addr)
        return ""

    def vm_limits(self, machine: Machine, path: Path) -> None:
        mem = machine.config.get("limits.memory")
        if mem is not None and not mem.strip().endswith("%"):
            size = checks.memory_bytes(mem)
            if size is None:
                self.err((*path, "config", "limits.memory"), f"{mem!r} is not a size",
                         'write a size like "2GiB"')
            elif size < checks.GIB:
                self.err((*path, "config", "limits.memory"),
                         f"a vm needs at least 1GiB of memory, got {mem}",
                         'set limits.memory to "1GiB" or more')
        cpu = machine.config.get("limits.cpu")
        if cpu is not None:
            count = checks.cpu_count(cpu)
            if count is None:
                self.err((*path, "config", "limits.cpu"), f"{cpu!r} is not a CPU count or set",
                         'write a count like "2" or a set like "0-3"')
            elif count < 1:
                self.err((*path, "config", "limits.cpu"), "a vm needs at least 1 CPU",
                         'set limits.cpu to "1" or more')

    def cross_checks(self, infra: Infra) -> None:
        owner: dict[str, Machine] = {}
        ips: dict[str, Machine] = {}
        domain_names = {d.name for d in infra.domains}
        gpu: list[Machine] = []
        for domain in infra.domains:
            for m in domain.machines:
                path: Path = ("domains", domain.name, "machines", m.name)
                if m.name in owner:
                    first = owner[m.name]
                    self.err(path, f"machine name '{m.name}' is also used in domain "
                             f"{first.domain} (line {self.line(self.mpath(first))})",
                             "machine names must be unique across all domains; rename one")
                else:
                    owner[m.name] = m
                if m.name in domain_names:
                    self.err(path, f"machine '{m.name}' has the name of a domain",
                             "rename the machine (Ansible hosts and groups share one namespace)")
                if m.ip:
                    if m.ip in ips:
                        first = ips[m.ip]
                        self.err((*path, "ip"), f"{m.ip} is already used by machine "
                                 f"{first.name} (line {self.line((*self.mpath(first), 'ip'))})",
                                 "give each machine its own address")
                    else:
                        ips[m.ip] = m
                if uses_gpu(m, domain):
                    gpu.append(m)
        if len(gpu) > 1:
            names = ", ".join(m.name for m in gpu)
            if infra.gpu_policy == "exclusive":
                for m in gpu[1:]:
                    self.err(self.mpath(m),
                             f"second GPU instance (first: {gpu[0].name}) while "
                             "global.gpu_policy is exclusive",
                             "remove the GPU from one machine or set global.gpu_policy: shared")
            else:
                self.warn(("global", "gpu_policy"),
                          f"{len(gpu)} instances share the GPU ({names})",
                          "they compete for its memory; fine if intended")

    @staticmethod
    def mpath(m: Machine) -> Path:
        return ("domains", m.domain, "machines", m.name)

    def admin_domain(self, glob_raw: dict[Any, Any], infra: Infra) -> None:
        names = [d.name for d in infra.domains]
        value = glob_raw.get("admin_domain")
        if "admin_domain" not in glob_raw or not isinstance(value, str):
            # The default names a domain only when there is one by that name.
            fallback = default("global", "admin_domain")
            infra.admin_domain = fallback if fallback in names else ""
            return
        infra.admin_domain = value
        if value and value not in names:
            guess = checks.did_you_mean(value, names)
            hint = f"did you mean '{guess}'? " if guess else ""
            self.err(("global", "admin_domain"), f"'{value}' is not a domain",
                     f'{hint}name one of your domains or write "" for none')

    def policies(self, raw: list[Any], infra: Infra) -> None:
        domains = {d.name: d for d in infra.domains}
        machines = {m.name: m for d in infra.domains for m in d.machines}
        for i, item in enumerate(raw):
            path: Path = ("network_policies", i)
            p = self.section(item, "network_policy", path)
            if "from" not in p or "to" not in p:
                continue
            ends: list[tuple[str, str, str]] = []
            sides: list[list[tuple[str, str, str]]] = []
            for key in ("from", "to"):
                name = p[key]
                if name == HOST:  # the host itself, only as a destination
                    self.host_endpoint(key, path, [*domains, *machines, *infra.domain_templates])
                    sides.append([(name, "host", "")])
                    continue
                if name in infra.domain_templates:  # a template: every domain it made
                    sides.append([(d, "domain", infra.subnet(domains[d]))
                                  for d in infra.domain_templates[name] if d in domains])
                elif name in domains:
                    ends.append((name, "domain", infra.subnet(domains[name])))
                elif name in machines:
                    ip = machines[name].ip
                    if not ip:
                        self.err((*path, key), f"machine '{name}' has no static ip",
                                 "give it an ip: a policy needs a fixed address")
                    ends.append((name, "machine", f"{ip}/32"))
                else:
                    known = [*domains, *machines, *infra.domain_templates]
                    guess = checks.did_you_mean(name, known)
                    hint = f"did you mean '{guess}'? " if guess else ""
                    self.err((*path, key), f"'{name}' is neither a domain nor a machine",
                             f"{hint}name a domain, template or machine of this file")
                    continue
                if name not in infra.domain_templates:
                    sides.append(ends[-1:])
            protocol = p.get("protocol", default("network_policy", "protocol"))
            ports: list[int | str] = []
            for j, value in enumerate(p.get("ports", default("network_policy", "ports"))):
                norm = checks.port(value)
                if norm is None:
                    self.err((*path, "ports", j), f"{_show(value)} is not a port",
                             'use a number 1-65535 or a range like "8000-8080"')
                else:
                    ports.append(norm)
            if protocol == "icmp" and p.get("ports"):
                self.err((*path, "ports"), "icmp has no ports",
                         "remove ports or use protocol tcp or udp")
            if len(sides) == 2:
                for src in sides[0]:
                    for dst in sides[1]:
                        infra.policies.append(Policy(
                            src[0], src[1], src[2], dst[0], dst[1], dst[2], protocol,
                            tuple(ports),
                            p.get("description", default("network_policy", "description"))))

    def host_endpoint(self, key: str, path: Path, names: Iterable[str]) -> None:
        """`host` is a destination only, and must not also name a domain, template or machine."""
        if key == "from":
            self.err((*path, key), "the host cannot be a policy source",
                     "only `to: host` exists: the host's own traffic is not filtered")
        elif HOST in names:
            self.err((*path, key), f"'{HOST}' names both the host and a domain or machine",
                     f"rename the domain, template or machine called {HOST}")


def _once_per_template_line(errors: list[Problem]) -> list[Problem]:
    """A template's mistake shows in each domain it makes: report it once, with a count."""
    first: dict[tuple[int | None, str, str], int] = {}
    repeats: dict[int, int] = {}
    kept: list[Problem] = []
    for p in errors:
        key = (p.line, p.path, p.fix)
        if not p.path.startswith("domain_templates.") or key not in first:
            first.setdefault(key, len(kept))
            kept.append(p)
        else:
            repeats[first[key]] = repeats.get(first[key], 0) + 1
    for index, more in repeats.items():
        p = kept[index]
        what = p.what[:-1] + f" and {more} more)" if p.what.endswith(")") else p.what
        kept[index] = Problem(p.file, p.line, p.path, what, p.fix)
    return kept


def validate(doc: Document, roles_root: str | None = None) -> tuple[Infra, list[Problem]]:
    """Return the normalised infrastructure and its warnings, or raise InputError.

    With ROLES_ROOT (the tree root, where ansible.cfg and site.yml are), every machine's
    role must also exist there (anklume/roles.py)."""
    v = _Validator(doc, None if roles_root is None else search_paths(roles_root))
    infra = v.run()
    return infra, v.warnings
