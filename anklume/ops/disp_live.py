"""The disposables Incus holds, and the incus calls that make, claim and delete them
(ADR-084). Each is marked as ours (the owner markers) and as a disposable:

- ``user.anklume.disposable``: ``ready`` (started ahead, never used) or ``used``;
- ``user.anklume.disposable.expires``: when the reaper deletes it (Unix time; used ones);
- ``user.anklume.disposable.client``: ``host:pid:start`` of the `make disp` it serves;
- ``user.anklume.disposable.image``: the image it was made from.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anklume.disposables import name as disposable_name
from anklume.disposables import octet_of
from anklume.limits import disposable_config, disposable_root_size
from anklume.ops.context import Context
from anklume.ops.instances import MANAGED, OWNER, address, incus, listing
from anklume.ops.problems import refuse
from anklume.ops.tree import Tree

MARK = "user.anklume.disposable"
EXPIRES = f"{MARK}.expires"
CLIENT = f"{MARK}.client"
IMAGE = f"{MARK}.image"
READY = "ready"
USED = "used"
# A claim is this directory made inside a ready one: mkdir is atomic, so two `make disp`
# never take the same one (ADR-084).
CLAIM_DIR = "/run/anklume-claimed"
# How long a new one may take to get its address (a cold boot on a loaded host).
BOOT_WAIT = 60.0


@dataclass(frozen=True)
class Domain:
    """What `make disp` reads of a domain in the generated tree."""

    name: str
    project: str
    prefix: str  # the subnet's first three octets
    first: int
    last: int
    preload: int
    image: str
    ttl: str
    limits: dict[str, Any] = field(default_factory=dict)

    def address(self, octet: int) -> str:
        return f"{self.prefix}.{octet}"

    def address_of(self, disposable: str) -> str:
        return self.address(octet_of(self.name, disposable) or 0)

    def limits_args(self) -> list[str]:
        """The per-instance limits Incus needs in a domain with limits (ADR-086)."""
        config = [a for k, v in disposable_config(self.limits).items()
                  for a in ("-c", f"{k}={v}")]
        root = disposable_root_size(self.limits)
        return [*config, *(["-d", f"root,size={root}"] if root else [])]


def domain_of(tree: Tree, name: str) -> Domain | None:
    """DOMAIN's disposables settings, None where the tree says it refuses them."""
    rec = (tree.raw.get("anklume_domains") or {}).get(name) or {}
    spec = rec.get("disposables")
    if not isinstance(spec, dict):
        return None
    first, _, last = str(spec.get("range", "200-249")).partition("-")
    return Domain(name=name, project=tree.project_of(name),
                  prefix=str(rec.get("subnet", "")).rsplit(".", 1)[0],
                  first=int(first), last=int(last), preload=int(spec.get("preload") or 0),
                  image=str(spec.get("image") or ""), ttl=str(spec.get("ttl") or "1h"),
                  limits=dict(rec.get("limits") or {}))


@dataclass(frozen=True)
class Disposable:
    name: str
    project: str
    status: str
    config: dict[str, str]

    @property
    def state(self) -> str:
        return self.config.get(MARK, "")

    @property
    def expires(self) -> float | None:
        try:
            return float(self.config[EXPIRES])
        except (KeyError, ValueError):
            return None

    @property
    def client(self) -> str:
        return self.config.get(CLIENT, "")


def read(ctx: Context, tree: Tree, project: str | None = None) -> list[Disposable]:
    """The disposables of this tree's owner (in PROJECT, or in every project)."""
    found = []
    for item in listing(ctx, tree, project=project):
        config = {str(k): str(v) for k, v in (item.get("config") or {}).items()}
        if MARK in config and config.get(MANAGED) == "true" and config.get(OWNER) == tree.owner:
            found.append(Disposable(str(item["name"]), str(item.get("project") or "default"),
                                    str(item.get("status") or ""), config))
    return sorted(found, key=lambda d: (d.project, d.name))


def state_of(ctx: Context, tree: Tree, project: str, name: str) -> str | None:
    """One instance's disposable marker now (ready, used), None when it is gone."""
    url = address(tree, f"/1.0/instances/{name}?project={project}")
    rc, out = incus(ctx, ["incus", "query", url], timeout=30)
    if rc:
        return None
    return str((json.loads(out or "{}").get("config") or {}).get(MARK) or "") or None


def argv(tree: Tree, project: str, name: str, verb: str, *rest: str) -> list[str]:
    return ["incus", *verb.split(), "--project", project, address(tree, name), *rest]


def client_id(pid: int | None = None) -> str:
    """``host:pid:start``: the process's start time tells it from a later one with its pid."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{start_time(pid)}"


def start_time(pid: int) -> str:
    """PID's start time, "" once it has ended (a zombie, not yet reaped, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


def client_gone(client: str) -> bool:
    """Whether the `make disp` a disposable serves has ended (only known on its own host)."""
    host, _, rest = client.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return start_time(int(pid)) != start


def marks(tree: Tree, state: str, image: str, ttl: int | None) -> list[str]:
    config = {MANAGED: "true", OWNER: tree.owner, MARK: state, IMAGE: image,
              "security.protection.delete": "false"}
    if ttl is not None:
        config[EXPIRES] = str(int(time.time() + ttl))
        config[CLIENT] = client_id()
    return [f"{k}={v}" for k, v in config.items()]


def source(tree: Tree, image: str) -> str:
    """IMAGE as `incus launch` reads it: a local alias is the tree's Incus's own (make
    remote-image copies it to a remote), `server:alias` names its image server."""
    return image if ":" in image else address(tree, image)


def create(ctx: Context, tree: Tree, dom: Domain, image: str, state: str,
           ttl: int | None) -> str:
    """Launch a disposable at the first free address of DOMAIN's range; its name."""
    taken = {octet_of(dom.name, d.name) for d in read(ctx, tree, dom.project)}
    last_error = ""
    for octet in range(dom.first, dom.last + 1):
        if octet in taken:
            continue
        name = disposable_name(dom.name, octet)
        config = [a for kv in marks(tree, state, image, ttl) for a in ("-c", kv)]
        rc, out = incus(ctx, ["incus", "launch", source(tree, image), address(tree, name),
                              "--ephemeral",
                              "--project", dom.project,
                              "-d", f"eth0,ipv4.address={dom.address(octet)}", *config,
                              *dom.limits_args()])
        if rc == 0:
            return name
        last_error = out
        if "already exists" in out:
            continue  # another `make disp` took this address first
        incus(ctx, argv(tree, dom.project, name, "delete", "--force"))  # a failed start
        if "already defined on another NIC" in out:
            continue  # a machine outside anklume holds the address
        from anklume.ops.doctor_host import plugin
        budget = plugin("module_utils.project_limits").explain(out, dom.name, dom.limits)
        if budget:
            raise refuse(budget, "")
        break
    else:
        if not last_error:
            raise refuse(f"every address of domain {dom.name}'s disposable range "
                         f"{dom.first}-{dom.last} is taken",
                         "make disp-clean removes leftovers; or widen global.disposable_range")
    raise refuse(f"cannot start a disposable in domain {dom.name}: {last_error}",
                 f"make doctor; the image {image} must exist (make image)")


def claim(ctx: Context, tree: Tree, dom: Domain, image: str, ttl: int) -> str | None:
    """Take one ready disposable of DOMAIN made from IMAGE; None when there is none."""
    for d in read(ctx, tree, dom.project):
        if d.state != READY or d.status != "Running" or d.config.get(IMAGE) != image:
            continue
        rc, _ = incus(ctx, argv(tree, d.project, d.name, "exec", "--", "mkdir", CLAIM_DIR))
        if rc:
            continue  # another one claimed it
        # Marked used before any command runs in it: a second claimer that could make the
        # directory again (removed by the first one's command) sees it used here.
        if state_of(ctx, tree, d.project, d.name) != READY:
            continue
        rc, _ = incus(ctx, argv(tree, d.project, d.name, "config set",
                                *marks(tree, USED, image, ttl)))
        if rc == 0:
            return d.name
    return None


def wait_address(ctx: Context, tree: Tree, project: str, name: str, want: str) -> str:
    """Wait until NAME's eth0 holds WANT (its DHCP lease came): "up", "gone" (deleted
    meanwhile, by its TTL) or "late" (not within BOOT_WAIT)."""
    deadline = time.monotonic() + BOOT_WAIT
    url = address(tree, f"/1.0/instances/{name}/state?project={project}")
    while time.monotonic() < deadline:
        rc, out = incus(ctx, ["incus", "query", url], timeout=30)
        if rc == 0:
            nic = ((json.loads(out or "{}").get("network") or {}).get("eth0") or {})
            if any(a.get("address") == want for a in nic.get("addresses") or []):
                return "up"
        elif "not found" in out.lower():
            return "gone"
        time.sleep(0.2)
    return "late"


def delete(ctx: Context, tree: Tree, project: str, name: str) -> bool:
    rc, out = incus(ctx, argv(tree, project, name, "delete", "--force"))
    return rc == 0 or "not found" in out.lower()
