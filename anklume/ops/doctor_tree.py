"""`make doctor`'s checks of what the tree declares: its images, its nftables table, its VMs
and GPUs, the remotes it names, and the drift the plan counts."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anklume.ops.doctor_host import Finding, Host, Repair, ok, skipped

PLAN = re.compile(r"^plan: (\d+) to create, (\d+) to change, (\d+) to remove, (\d+) orphans")
# Seconds the plan may take (a no-op plan of the shipped tree takes about 5 s).
PLAN_TIMEOUT = 300.0
NFT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Machine:
    name: str
    project: str
    type: str
    image: str
    gpu: bool


def machines(h: Host) -> list[Machine]:
    if h.tree is None:
        return []
    default = str(h.tree.raw.get("anklume_default_os_image") or "")
    found = []
    for inst in h.tree.instances.values():
        hv = h.hostvars(inst.name)
        found.append(Machine(inst.name, inst.project, inst.type,
                             str(hv.get("instance_os_image") or default),
                             bool(hv.get("instance_gpu", False))))
    return found


def split_image(image: str) -> tuple[str, str]:
    """(server, alias): server "" for an image of the tree's own Incus (ALIAS, local:ALIAS)."""
    if ":" not in image:
        return "", image
    server, alias = image.split(":", 1)
    return ("" if server == "local" else server), alias


def _names(ms: list[Machine]) -> str:
    return ", ".join(m.name for m in ms)


def images(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("images", "no generated tree")
    needed: dict[str, list[Machine]] = {}
    for m in machines(h):
        server, alias = split_image(m.image)
        if not server and alias:
            needed.setdefault(alias, []).append(m)
    if not needed:
        return ok("images", "no image of this Incus is used (image servers: see remotes)")
    if not h.answers():
        return skipped("images", f"Incus on {h.remote} does not answer")
    aliases, err = h.query("/1.0/images/aliases?recursion=1")
    if err:
        return [Finding("images", False, f"cannot list the images of {h.remote}: {err}",
                        why="apply needs them", fix="incus image list")]
    have = {str(a.get("name")): str(a.get("type") or "container") for a in aliases or []}
    found = []
    for alias, users in sorted(needed.items()):
        vms = [m for m in users if m.type == "vm"]
        if alias not in have:
            found.append(_missing(h, alias, users, bool(vms)))
            continue
        wrong = vms if have[alias] == "container" else [m for m in users if m.type != "vm"]
        if wrong:
            found.append(Finding("images", False, f"image {alias} is a {have[alias]} image but "
                                 f"{_names(wrong)} {'is' if len(wrong) == 1 else 'are'} not",
                                 why="Incus refuses to create an instance from an image of "
                                     "the other type",
                                 fix="give those machines an image of their type (os_image:)"))
    if found:
        return found
    return ok("images", f"{len(needed)} image{'s' if len(needed) > 1 else ''} on {h.remote}: "
              + ", ".join(sorted(needed)))


def _missing(h: Host, alias: str, users: list[Machine], vm: bool) -> Finding:
    what = f"image {alias} is missing on {h.remote} (used by {_names(users)})"
    why = "apply cannot create these machines without it"
    if not h.local:
        return Finding("images", False, what, why, fix="make remote-image",
                       repair=Repair((h.python, "scripts/remote_image.py"),
                                     f"copied the missing images to {h.remote}"))
    if vm:
        return Finding("images", False, what, why,
                       fix=f"import a virtual-machine image as {alias} "
                           f"(incus image import ... --alias {alias})")
    # scripts/build-image.sh builds the Debian image under any alias (make image IMAGE=).
    return Finding("images", False, what, why, fix=f"make image IMAGE={alias}",
                   repair=Repair(("bash", "scripts/build-image.sh", alias),
                                 f"built and imported {alias} (about two minutes)")
                   if h.root_user else None)


def ruleset(h: Host) -> tuple[str, Path]:
    """(table, rendered file) as the nftables role names them."""
    table = h.setting("incus_nftables_table", "anklume")
    named = h.setting("incus_nftables_file", "")
    path = Path(named) if named else h.root / "nftables" / f"{table}.nft"
    return table, path if path.is_absolute() else h.root / path


def nftables(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("nftables", "no generated tree")
    table, path = ruleset(h)
    rel = h.rel(path)
    if not path.is_file():
        return [Finding("nftables", False, f"no rendered ruleset {rel}",
                        why="the rules that cut traffic between domains are rendered by make "
                            "nftables (or make apply) and loaded from it",
                        fix="make nftables")]
    if not h.local:
        return _remote_rules(h, table, path, rel)
    if not h.root_user:
        return skipped("nftables", "nft shows the kernel's rules to root only")
    rc, out, err = h.call(["bash", "scripts/deploy-nftables.sh", "--dry-run", "--no-record",
                           str(path)], timeout=NFT_TIMEOUT)
    if rc != 0:
        last = (err or out).strip().splitlines()
        return [Finding("nftables", False, f"{rel} cannot be loaded: "
                        f"{last[-1] if last else f'exit {rc}'}",
                        why="the kernel keeps whatever it holds now", fix="make nftables")]
    if "already matches" in out:
        return ok("nftables", f"table inet {table} matches {rel}")
    loaded = h.call(["nft", "list", "table", "inet", table])[0] == 0
    changed = sum(1 for line in out.splitlines()[1:] if line[:1] in "+-")
    what = (f"table inet {table} differs from {rel} ({changed} lines)" if loaded
            else f"table inet {table} is not loaded (rendered in {rel})")
    return [Finding("nftables", False, what,
                    why="traffic between domains, and out of them, is not cut the way the "
                        "tree says",
                    fix=f"make nftables-deploy NFT_FILE={rel}",
                    repair=Repair(("bash", "scripts/deploy-nftables.sh", rel),
                                  f"loaded {rel} (table inet {table})"))]


def _remote_rules(h: Host, table: str, path: Path, rel: str) -> list[Finding]:
    """The sha256 that scripts/deploy-nftables.sh recorded on the remote (ADR-069)."""
    if not h.answers():
        return skipped("nftables", f"Incus on {h.remote} does not answer")
    mod = h.plugin("modules.anklume_nftables")
    client = h.plugin("module_utils.incus_client")
    sha = hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()
    try:
        found = mod.records(client.IncusClient(h.remote), h.remote, table)
    except client.IncusError as exc:
        return [Finding("nftables", False, f"cannot read the ruleset record: {exc}",
                        why="the rules of that host are unknown", fix="make plan")]
    if mod.overall_state(found, sha) == "current":
        return ok("nftables", f"{h.remote} holds {rel} (recorded sha256 {sha[:12]})")
    reason = str(mod.remote_entry(found, h.remote, table, rel, sha)["reason"])
    what, _, step = reason.rpartition("; ")
    return [Finding("nftables", False, what, why="traffic between domains on that host is "
                    "not cut the way the tree says", fix=step)]


def vm(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("vm", "no generated tree")
    vms = [m for m in machines(h) if m.type == "vm"]
    if not vms:
        return ok("vm", "no VM declared")
    if not h.answers():
        return skipped("vm", f"Incus on {h.remote} does not answer")
    support = h.plugin("modules.incus_vm_support")
    client = h.plugin("module_utils.incus_client")
    declared = [{"name": m.name, "project": m.project, "type": "vm"} for m in vms]
    try:
        result: dict[str, Any] = support.check(client.IncusClient(h.remote), declared, h.remote)
    except client.IncusError as exc:
        return [Finding("vm", False, f"cannot ask Incus about VMs: {exc}", why="",
                        fix="make plan")]
    drivers = ", ".join(result["drivers"]) or "none"
    if result["vm_supported"]:
        return ok("vm", f"Incus on {h.remote} runs VMs (drivers {drivers})")
    absent = [p for p in ("/dev/kvm", "/dev/vhost-vsock", "/dev/vsock")
              if h.local and not Path(p).exists()]
    here = f"; absent here: {', '.join(absent)}" if absent else ""
    return [Finding("vm", False, f"Incus on {h.remote} cannot run VMs ({_names(vms)}): drivers "
                    f"[{drivers}], it says: {result['reason']}{here}",
                    why="apply stops before any change while one is declared (ADR-065)",
                    fix="on a host with KVM: modprobe vhost_vsock, install qemu-system and "
                        "ovmf, restart incusd; or declare them type: lxc (docs/vm-support.md)")]


def gpu(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("gpu", "no generated tree")
    asks = [m for m in machines(h) if m.gpu]
    if not asks:
        return ok("gpu", "no GPU declared")
    if not h.answers():
        return skipped("gpu", f"Incus on {h.remote} does not answer")
    mod = h.plugin("modules.incus_gpu")
    resources, err = h.query("/1.0/resources")
    if err:
        return [Finding("gpu", False, f"cannot read the resources of {h.remote}: {err}",
                        why="", fix="incus info --resources")]
    cards = mod.nvidia_cards(resources)
    if not cards:
        seen = "; ".join(mod.seen_cards(resources)) or "no GPU at all"
        return [Finding("gpu", False, f"no NVIDIA GPU with its driver loaded on {h.remote} "
                        f"(it lists {seen})",
                        why=f"apply stops before any change: {_names(asks)} ask for one",
                        fix="run on a host with an NVIDIA GPU and its driver, or set gpu: "
                            "false (and drop their gpu device or nvidia-compute profile)")]
    wanted = h.setting("incus_gpu_userspace", "auto")
    driver_dir = h.setting("incus_gpu_driver_dir", "/usr/local/nvidia")
    method = "none"
    if any(m.type != "vm" for m in asks):
        method, problem = mod.pick_userspace(wanted, driver_dir, h.local)
        if problem:
            return [Finding("gpu", False, problem, why="the containers that ask for the GPU "
                            "get no nvidia-smi nor CUDA libraries",
                            fix="sudo scripts/gpu-userspace.sh, or install the NVIDIA "
                                "container toolkit (docs/gpu-advanced.md)")]
    return ok("gpu", str(mod.describe(cards, method or "none", driver_dir,
                                      [{"name": m.name, "type": m.type} for m in asks])))


def remotes(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("remotes", "no generated tree")
    wanted: dict[str, tuple[str, str]] = {}  # remote -> (why it is used, an image alias)
    if not h.local:
        wanted[h.remote] = ("the tree's instances live there (global.incus_remote)", "")
    for m in machines(h):
        server, alias = split_image(m.image)
        if server:
            wanted.setdefault(server, (f"the image of {m.name} comes from there", alias))
    if not wanted:
        return ok("remotes", "no remote used: the tree's Incus is this machine's")
    rc, out, _ = h.call(["incus", "remote", "list", "--format", "json"])
    try:
        configured: dict[str, Any] = json.loads(out) if rc == 0 else {}
    except ValueError:
        configured = {}
    return [f for name, (why, alias) in wanted.items()
            for f in _remote(h, name, why, alias, configured.get(name))]


def _remote(h: Host, name: str, why: str, alias: str, conf: Any) -> list[Finding]:
    trust = (f"make remote-add REMOTE={name} TOKEN=<token> (the token: make remote-token "
             "CLIENT=<this machine> on that host)")
    if not isinstance(conf, dict):
        return [Finding("remotes", False, f"remote {name} is not configured on this client",
                        why=why, fix=trust)]
    addr = conf.get("Addr") or "?"
    if conf.get("Protocol") == "simplestreams":
        rc, _, err = h.call(["incus", "image", "info", f"{name}:{alias}"], timeout=20)
        if rc != 0:
            return [Finding("remotes", False, f"image server {name} ({addr}) does not answer: "
                            f"{err.strip().removeprefix('Error: ')}", why=why,
                            fix="build the image here (make image) and use its alias, or "
                                f"make {addr} reachable")]
        return ok("remotes", f"image server {name} has {alias}")
    found, err = h.server(name)
    if err:
        return [Finding("remotes", False, f"remote {name} ({addr}) does not answer: {err}",
                        why=why, fix="start Incus on that host (make host there), or set its "
                                     f"address: incus remote set-url {name} https://HOST:8443")]
    if found.get("auth") != "trusted":
        return [Finding("remotes", False, f"remote {name} ({addr}) answers but does not trust "
                        "this client", why=why, fix=trust)]
    version = (found.get("environment") or {}).get("server_version") or "?"
    return ok("remotes", f"remote {name}: Incus {version}, trusts this client")


def judge_plan(text: str, rc: int) -> list[Finding]:
    """The drift finding of a plan's output (its last summary line)."""
    lines = [line for line in text.splitlines() if PLAN.match(line)]
    if not lines:
        errors = [line.strip() for line in text.splitlines()
                  if line.strip().startswith(("fatal:", "ERROR!", "msg:"))]
        reason = errors[-1] if errors else (text.strip().splitlines() or [f"exit {rc}"])[-1]
        return [Finding("drift", False, f"the plan did not finish (exit {rc}): {reason[:300]}",
                        why="what Incus holds against the tree is unknown",
                        fix="make plan (it shows the error in full)")]
    line = lines[-1]
    m = PLAN.match(line)
    assert m is not None
    create, change, remove = (int(m.group(i)) for i in (1, 2, 3))
    if create or change or remove or "conflicts" in line or "cannot run" in line:
        return [Finding("drift", False, line,
                        why="Incus does not hold what the tree declares (changed by hand, "
                            "deleted, or not applied yet)",
                        fix="make apply (make plan lists each object)")]
    return ok("drift", line)


def drift(h: Host) -> list[Finding]:
    if h.tree is None:
        return skipped("drift", "no generated tree")
    if not h.answers():
        return skipped("drift", f"Incus on {h.remote} does not answer")
    playbook = str(Path(h.python).parent / "ansible-playbook")
    rc, out, err = h.call([playbook, "site.yml", "--check", "--diff", "--tags", "infra"],
                          timeout=PLAN_TIMEOUT)
    return judge_plan(out + err, rc)
