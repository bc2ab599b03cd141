"""The generated tree as the daily commands read it: domains, their machines, templates.

Read from group_vars/all.yml and host_vars/ (what `make sync` wrote), never from the
playbooks' run-time state, so every target resolves a scope the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anklume import yamlload
from anklume.ops.problems import refuse


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    # libyaml: every apply reads one file per machine here.
    data = yamlload.plain(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Instance:
    name: str
    domain: str
    project: str
    type: str = "lxc"
    ephemeral: bool = False
    ip: str = ""
    profiles: tuple[str, ...] = ()
    gui: bool = False
    # Sound (and the microphone) of its gui session (ADR-091, docs/desktop.md).
    audio: bool = False
    microphone: bool = False


@dataclass
class Tree:
    root: Path
    remote: str = "local"
    owner: str = "anklume"
    admin_domain: str = "admin"
    domains: dict[str, list[str]] = field(default_factory=dict)
    templates: dict[str, list[str]] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def _domain(self, domain: str) -> dict[str, Any]:
        return (self.raw.get("anklume_domains") or {}).get(domain) or {}

    def project_of(self, domain: str) -> str:
        return str(self._domain(domain).get("project") or domain)

    def network_of(self, domain: str) -> str:
        """The domain's bridge."""
        return str(self._domain(domain).get("network") or "")


def load(root: Path) -> Tree:
    """The tree at ROOT; one line naming `make sync` when it has never been rendered."""
    allvars = _load(root / "group_vars" / "all.yml")
    if not allvars:
        raise refuse(f"no generated tree in {root} (group_vars/all.yml is missing)",
                     "run `make sync` first")
    tree = Tree(root=root, raw=allvars,
                remote=str(allvars.get("anklume_incus_remote") or "local"),
                owner=str(allvars.get("anklume_project_name") or "anklume"),
                admin_domain=str(allvars.get("anklume_admin_domain") or "admin"),
                templates={str(k): list(v) for k, v in
                           (allvars.get("anklume_domain_templates") or {}).items()})
    for domain, rec in (allvars.get("anklume_domains") or {}).items():
        machines = [str(m) for m in (rec or {}).get("machines") or []]
        tree.domains[str(domain)] = machines
        project = str((rec or {}).get("project") or domain)
        for m in machines:
            hv = _load(root / "host_vars" / f"{m}.yml")
            tree.instances[m] = Instance(
                name=m, domain=str(domain), project=project,
                type=str(hv.get("instance_type") or "lxc"),
                ephemeral=bool(hv.get("instance_ephemeral", False)),
                ip=str(hv.get("instance_ip") or ""),
                profiles=tuple(str(p) for p in hv.get("instance_profiles") or ()),
                gui=hv.get("instance_gui") is True,
                audio=hv.get("instance_audio") is True,
                microphone=hv.get("instance_microphone") is True)
    return tree


def lock_key(root: Path, infra: str) -> tuple[str, str]:
    """(global.incus_remote, project_name) of the description, which the command is about
    to render; the rendered tree's when the file cannot be read."""
    try:
        doc = yamlload.plain((root / infra).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        doc = None
    if not isinstance(doc, dict):
        allvars = _load(root / "group_vars" / "all.yml")
        return (str(allvars.get("anklume_incus_remote") or "local"),
                str(allvars.get("anklume_project_name") or "anklume"))
    glob = doc.get("global")
    if not isinstance(glob, dict):
        glob = {}
    return (str(glob.get("incus_remote") or "local"), str(doc.get("project_name") or "anklume"))
