# SPDX-License-Identifier: AGPL-3.0-or-later
"""Facts read on the controller, in process, for roles that copy from it (ADR-058).

A templated value costs nothing next to a task (`ansible-galaxy collection list` took
about 1.2 s here), so a role can compare what the controller holds with what an instance
holds in a single probe, and run its converging tasks only when they differ.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusClient,
    IncusError,
)
from ansible_collections.anklume.incus.plugins.module_utils.state_probe import cached_sha256


def controller_collection(name: str, cache: str | None = None) -> dict[str, str]:
    """{name, path (its ansible_collections folder), version, manifest_sha256} of NAME as
    the controller loads it; the checksum tells an instance's copy from another build
    (CACHE: as for controller_sha256)."""
    relative = os.path.join("ansible_collections", *str(name).split("."))
    for base in AnsibleCollectionConfig.collection_paths:
        manifest = os.path.join(base, relative, "MANIFEST.json")
        if os.path.isfile(manifest):
            with open(manifest, encoding="utf-8") as handle:
                version = json.load(handle)["collection_info"]["version"]
            return {"name": name, "path": os.path.join(base, "ansible_collections"),
                    "version": version, "manifest_sha256": controller_sha256(manifest, cache)}
    raise AnsibleFilterError(
        f"collection {name} is not installed on the controller: install it "
        f"(ansible-galaxy collection install {name}) or remove it from admin_bootstrap_collections")


def controller_sha256(path: str, cache: str | None = None) -> str:
    """SHA-256 of a file on the controller. With CACHE (a folder), the digest is kept in
    CACHE/controller-sha256.json under the file's identity (cached_sha256), so a file that
    did not change is not read again."""
    record = os.path.join(cache, "controller-sha256.json") if cache else None
    try:
        return cached_sha256(path, record)
    except OSError as exc:
        raise AnsibleFilterError(f"cannot read {path} on the controller: {exc.strerror}") from exc


def incus_runs_here(remote: str = "local") -> bool:
    """True when the Incus daemon behind REMOTE runs on this machine: its server name is this
    machine's hostname. In the admin machine it is the host's (ADR-062), so rules meant for
    the host's kernel are rendered there, not loaded. A remote other than ``local`` is never
    here: it is another host, or a daemon in its own network namespace (ADR-068), whose
    nftables and GPU user space the controller cannot see even when the hostnames match."""
    if str(remote or "local") != "local":
        return False
    try:
        server = IncusClient(remote=str(remote), timeout=30).get(
            "/1.0", what="reading the Incus server")
    except IncusError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    here: bool = (server or {}).get("environment", {}).get("server_name") == socket.gethostname()
    return here


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"controller_collection": controller_collection,
                "controller_sha256": controller_sha256,
                "incus_runs_here": incus_runs_here}
