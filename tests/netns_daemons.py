"""Second Incus daemons for the remote and cluster tests (ADR-068).

``scripts/incus-netns.sh`` runs each one in its own network namespace and
directory, listening on HTTPS on the lab bridge ``anklume-rl`` (10.199.0.0/24):
a real remote host on this machine. The controller side of a test uses its own
client configuration (``INCUS_CONF``), so the remotes it adds never reach root's
``~/.config/incus``; a test passes :meth:`Lab.env` to every command it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.incus_helpers import REPO, lab_make, lab_tree, run

SCRIPT = REPO / "scripts" / "incus-netns.sh"


def netns(*args: str, timeout: float = 300) -> str:
    return run(["bash", str(SCRIPT), *args], timeout=timeout)


class Lab:
    """Daemons ``names`` at ``addresses``; a client config under ``conf``."""

    def __init__(self, conf: Path, daemons: dict[str, str]) -> None:
        self.conf = conf
        self.daemons = daemons

    def env(self) -> dict[str, str]:
        return {**os.environ, "INCUS_CONF": str(self.conf)}

    def incus(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return run(["incus", *args], env=self.env(), check=check, timeout=timeout)

    def down(self) -> None:
        """Remove every daemon and the client config; safe to call twice."""
        for name in self.daemons:
            subprocess.run(["bash", str(SCRIPT), "down", name], capture_output=True,
                           text=True, timeout=300, check=False)
        shutil.rmtree(self.conf, ignore_errors=True)

    def up(self) -> None:
        """Start the daemons from nothing (leftovers of an interrupted run go first)."""
        self.down()
        self.conf.mkdir(parents=True)
        for name, address in self.daemons.items():
            netns("up", name, address)

    def trust(self, remote: str, daemon: str) -> None:
        """Add ``daemon`` as remote ``remote``: a trust token, as a user does it."""
        token = netns("token", daemon, f"anklume-{remote}").strip()
        self.incus("remote", "add", remote, token)

    def on_host(self, daemon: str, *args: str,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command run ON ``daemon``'s host: in its namespace, its daemon as the local one,
        from the repository (as a user runs scripts/deploy-nftables.sh there)."""
        proc = subprocess.run(["ip", "netns", "exec", f"ank-{daemon}", "env",
                               f"INCUS_DIR=/var/lib/anklume-netns/{daemon}", *args],
                              capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
        assert not check or proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc

    def copy_image(self, alias: str, remote: str) -> None:
        self.incus("image", "copy", f"local:{alias}", f"{remote}:", "--alias", alias,
                   "--mode", "relay")


class LabTree:
    """A lab tree (tests.incus_helpers.lab_tree) driven through make against ``remote`` with
    ``lab``'s client configuration; each step's output and duration, by step name."""

    def __init__(self, root: Path, lab: Lab, remote: str) -> None:
        self.root, self.lab, self.remote = lab_tree(root), lab, remote
        self.out: dict[str, str] = {}
        self.seconds: dict[str, float] = {}

    def make(self, step: str, *args: str, rc: int | None = 0) -> str:
        """Run make ARGS in the tree; it must exit ``rc`` (None: any failure)."""
        start = time.monotonic()
        code, out = lab_make(self.root, *args, timeout=600, INCUS_CONF=str(self.lab.conf))
        self.seconds[step] = time.monotonic() - start
        self.out[step] = out
        ok = code != 0 if rc is None else code == rc
        assert ok, f"{step}: make {' '.join(args)} exited {code}, want {rc}:\n{out}"
        return out

    def write(self, doc: dict[str, Any]) -> None:
        (self.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def sync_with_table(self, doc: dict[str, Any], table: str) -> None:
        """Write and sync DOC, with the lab's own nftables table name (outside the managed
        section, so every later sync keeps it): never the real one."""
        self.write(doc)
        self.make("sync", "sync")
        allvars = self.root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {table}\n")

    def query(self, path: str) -> Any:
        return json.loads(self.lab.incus("query", f"{self.remote}:{path}") or "null")
