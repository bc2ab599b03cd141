"""Where the Ansible roles a machine may name can be found, so that sync refuses a typo.

A plain name (``base_system``) is a directory of one of the roles directories: this
project's ``roles/``, the tree root's ``roles/`` (beside site.yml) and every ``roles_path``
entry. A fully qualified name (``namespace.collection.role``) is
``ansible_collections/NAMESPACE/COLLECTION/roles/ROLE`` under a collections path. The paths
come from the ansible.cfg Ansible reads when ``make`` runs it from the tree root, from
``ANSIBLE_ROLES_PATH`` / ``ANSIBLE_COLLECTIONS_PATH`` and from Ansible's defaults, all
together: the check is there to catch a mistyped name, never to refuse a role Ansible finds.
"""

from __future__ import annotations

import configparser
import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # this project's tree (roles/, ansible.cfg)
# Ansible's own defaults of roles_path and collections_path.
_DEFAULT_ROLES = [Path(os.path.expanduser(p)) for p in
                  ("~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles")]
_DEFAULT_COLLECTIONS = [Path(os.path.expanduser(p)) for p in
                        ("~/.ansible/collections", "/usr/share/ansible/collections")]


def ansible_cfg(root: Path) -> Path | None:
    """The ansible.cfg Ansible reads when it runs in ROOT (its own order of precedence)."""
    candidates = [os.environ.get("ANSIBLE_CONFIG", ""), str(root / "ansible.cfg"),
                  "~/.ansible.cfg", "/etc/ansible/ansible.cfg"]
    for name in candidates:
        if name and (path := Path(os.path.expanduser(name))).is_file():
            return path
    return None


def _split(value: str, base: Path) -> list[Path]:
    """A colon-separated path list of ansible.cfg; relative entries are from its folder."""
    return [base / os.path.expanduser(os.path.expandvars(p.strip()))
            for p in value.split(os.pathsep) if p.strip()]


def _from_cfg(cfg: Path | None, *keys: str) -> list[Path]:
    if cfg is None:
        return []
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read(cfg, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return []  # Ansible itself reports a broken ansible.cfg
    for key in keys:
        if parser.has_option("defaults", key):
            return _split(parser.get("defaults", key), cfg.parent)
    return []


def _from_env(*names: str) -> list[Path]:
    for name in names:
        if os.environ.get(name):
            return _split(os.environ[name], Path.cwd())
    return []


@dataclass(frozen=True)
class RolePaths:
    """The folders searched for roles and for collections."""

    roles: tuple[Path, ...]
    collections: tuple[Path, ...]

    def exists(self, name: str) -> bool:
        if name.count(".") >= 2:
            return any((c / "roles" / role).is_dir() for c, role in self._collection(name))
        return any((d / name).is_dir() for d in self.roles)

    def names_like(self, name: str) -> list[str]:
        """The role names a did-you-mean can offer for NAME."""
        if name.count(".") >= 2:
            prefix = name.rsplit(".", 1)[0]
            return sorted({f"{prefix}.{r.name}" for c, _ in self._collection(name)
                           for r in _dirs(c / "roles")})
        return sorted({r.name for d in self.roles for r in _dirs(d)})

    def _collection(self, name: str) -> list[tuple[Path, str]]:
        """(collection folder, role) for each collections path, for ``ns.coll.role``."""
        namespace, collection, role = name.split(".", 2)
        out = []
        for base in self.collections:
            top = base if base.name == "ansible_collections" else base / "ansible_collections"
            out.append((top / namespace / collection, role))
        return out


def _dirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def search_paths(root: str) -> RolePaths:
    """The role and collection folders for a tree rendered in ROOT."""
    tree = Path(root)
    cfg = ansible_cfg(tree)
    roles = [PROJECT / "roles", tree / "roles",
             *_from_cfg(cfg, "roles_path"), *_from_env("ANSIBLE_ROLES_PATH"),
             *_DEFAULT_ROLES]
    collections = [*_from_cfg(cfg, "collections_path", "collections_paths"),
                   *_from_env("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"),
                   *_DEFAULT_COLLECTIONS,
                   PROJECT / "collections",
                   *(Path(p) for p in sys.path if p)]  # collections installed with ansible
    return RolePaths(tuple(dict.fromkeys(roles)), tuple(dict.fromkeys(collections)))
