#!/usr/bin/env python3
# SPDX-License-Identifier: AGPL-3.0-or-later
"""`make remote-image`: put the images infra.yml uses on its remote Incus host.

Reads the rendered tree (group_vars/all.yml, host_vars/) beside this directory (or DIR).
When ``global.incus_remote`` names a remote (not ``local``), every image the declared
machines use that lives on this machine (an alias without a remote, or ``local:ALIAS``)
must exist on that remote under the same alias: the instances are created from the
remote's own images. A missing one is copied from here with ``incus image copy --mode
relay`` (the remote cannot reach this machine; the client streams it). Images of a public
server (``images:...``) are left to Incus. Nothing to do with the local remote.

Exit 0 when every image is there, 2 with one line when one cannot be copied.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml


def load(path: Path) -> dict:
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def local_alias(image: str) -> str | None:
    """The alias of IMAGE on this machine's Incus, or None when another server holds it."""
    if ":" not in image:
        return image or None
    remote, alias = image.split(":", 1)
    return alias if remote == "local" and alias else None


def images_needed(allvars: dict, hostvars: dict[str, dict]) -> list[str]:
    """Local aliases of the images the declared machines use, sorted, once each."""
    default = str(allvars.get("anklume_default_os_image") or "")
    out = set()
    for rec in (allvars.get("anklume_domains") or {}).values():
        for machine in rec.get("machines") or []:
            image = str((hostvars.get(machine) or {}).get("instance_os_image") or default)
            alias = local_alias(image)
            if alias:
                out.add(alias)
    return sorted(out)


def unreachable(remote: str) -> str:
    """Why REMOTE does not answer this client (one line), or "" when it does."""
    proc = subprocess.run(["incus", "query", f"{remote}:/1.0"], capture_output=True, text=True,
                          check=False)
    if proc.returncode == 0:
        return ""
    err = (proc.stderr or proc.stdout).strip().removeprefix("Error: ")
    return (f"remote {remote} does not answer: {err} (trust it first: make remote-add "
            f"REMOTE={remote} TOKEN=<from make remote-token on that host>)")


def has_image(remote: str, alias: str) -> bool:
    proc = subprocess.run(["incus", "query", f"{remote}:/1.0/images/aliases/{alias}"],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path.cwd()
    allvars = load(root / "group_vars" / "all.yml")
    if not allvars:
        print("remote-image: no group_vars/all.yml here: run `make sync` first", file=sys.stderr)
        return 2
    remote = str(allvars.get("anklume_incus_remote") or "local")
    if remote == "local":
        return 0
    machines = [m for rec in (allvars.get("anklume_domains") or {}).values()
                for m in rec.get("machines") or []]
    hostvars = {m: load(root / "host_vars" / f"{m}.yml") for m in machines}
    why = unreachable(remote)
    if why:
        print(f"remote-image: {why}", file=sys.stderr)
        return 2
    for alias in images_needed(allvars, hostvars):
        if has_image(remote, alias):
            continue
        if not has_image("local", alias):
            print(f"remote-image: image {alias} is neither on {remote} nor here: build it "
                  "(make image) or import it on the remote host", file=sys.stderr)
            return 2
        start = time.monotonic()
        proc = subprocess.run(["incus", "image", "copy", f"local:{alias}", f"{remote}:",
                               "--alias", alias, "--mode", "relay"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().removeprefix("Error: ")
            print(f"remote-image: copying {alias} to {remote} failed: {err}", file=sys.stderr)
            return 2
        print(f"remote-image: copied {alias} to {remote} ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
