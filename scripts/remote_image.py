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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, run or imported
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))  # its plugins
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusClient,
    IncusError,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.desired_state import image_of
from status import load

from anklume.errors import pipe_safe


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
            alias = local_alias(image_of(hostvars.get(machine) or {}, default))
            if alias:
                out.add(alias)
    return sorted(out)


def aliases(server: str) -> set[str] | str:
    """The image aliases SERVER holds (one read, which also proves it answers this client),
    or why it does not answer (one line)."""
    try:
        found = IncusClient(server).get("/1.0/images/aliases", params={"recursion": 1},
                                        what=f"remote {server} does not answer") or []
    except IncusError as exc:
        return (f"{exc} (trust it first: make remote-add REMOTE={server} TOKEN=<from make "
                "remote-token on that host>)")
    return {a["name"] for a in found}


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
    there = aliases(remote)
    if isinstance(there, str):
        print(f"remote-image: {there}", file=sys.stderr)
        return 2
    missing = [a for a in images_needed(allvars, hostvars) if a not in there]
    here = aliases("local") if missing else set()
    for alias in missing:
        if isinstance(here, str) or alias not in here:
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
    sys.exit(pipe_safe(lambda: main(sys.argv)))
