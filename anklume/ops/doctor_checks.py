"""`make doctor`'s checks of the machine: root, the tree, the daemon, lxcfs, the storage
pool, subordinate ids and free disk space. Each returns its findings (doctor_host.Finding);
the checks of what the tree declares are in doctor_tree.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from anklume import render, validate, writer, yamlload
from anklume.errors import AnklumeError
from anklume.ops.doctor_host import LXCFS_DIR, Finding, Host, Repair, ok, skipped

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
# An unprivileged container maps its ids 0..65535 onto a range of the host's.
CONTAINER_IDS = 65536
GIB = 1 << 30
# Below this, an image build (about 1 GiB unpacked) or a few new instances fill the disk.
MIN_FREE = 5 * GIB
MOUNTS = Path("/proc/self/mounts")


def root(h: Host) -> list[Finding]:
    if h.root_user:
        return ok("root", "running as root")
    if not h.local:
        return ok("root", f"not root (uid {h.euid}): not needed, Incus runs on {h.remote}")
    return [Finding("root", False, f"not running as root (uid {h.euid})",
                    why="the lxcfs and nftables checks read what only root can, and the "
                        "repairs of FIX=1 run as root",
                    fix="sudo make doctor")]


def tree(h: Host) -> list[Finding]:
    """The generated tree exists and is what INFRA renders today (in-process, no write)."""
    if h.tree is None:
        return [Finding("tree", False, f"no generated tree: {h.tree_problem}",
                        why="the images, rules, VMs and GPUs to check are read from it",
                        fix="make sync")]
    path = h.infra if os.path.isabs(h.infra) else str(h.root / h.infra)
    try:
        doc = yamlload.load_text(yamlload.read_text(path, h.infra), h.infra)
        infra, _ = validate.validate(doc, roles_root=str(h.root))
        changes, _ = writer.plan(str(h.root), render.render(infra))
    except AnklumeError as exc:
        return [Finding("tree", False, f"{h.infra} does not render: {exc.problems[0].render()}",
                        why="sync, plan and apply stop on it; the checks read the tree as "
                            "last rendered", fix=f"fix {h.infra}, then make sync")]
    if changes:
        names = ", ".join(c.rel for c in changes[:3]) + (", ..." if len(changes) > 3 else "")
        return [Finding("tree", False, f"the generated tree is behind {h.infra}: sync would "
                        f"write {len(changes)} files ({names})",
                        why="plan, apply and these checks read the tree as last rendered",
                        fix="make sync" if h.infra == "infra.yml" else
                        f"make sync INFRA={h.infra}")]
    return ok("tree", f"the generated tree is in step with {h.infra}")


def daemon(h: Host) -> list[Finding]:
    if not h.local:
        return ok("daemon", f"Incus runs on remote {h.remote} (see remotes)")
    if shutil.which("incus", path=h.env.get("PATH")) is None:
        return [Finding("daemon", False, "the incus client is not installed",
                        why="every step talks to Incus through it", fix="make host")]
    socket = os.path.join(h.incus_dir, "unix.socket")
    found, err = h.server()
    if err:
        system = h.system_incus
        return [Finding(
            "daemon", False, f"Incus does not answer on {socket}: {err}",
            why="plan, apply, status and every other check of Incus need it",
            fix="make host" if system else
            f"start the Incus daemon that serves {h.incus_dir}, or unset INCUS_DIR",
            repair=Repair(("bash", "scripts/host.sh"), "started the Incus daemon (make host)")
            if system and h.root_user else None)]
    if found.get("auth") != "trusted":
        return [Finding("daemon", False, f"Incus answers on {socket} but does not trust this "
                        f"user (auth: {found.get('auth')})", why="it shows nothing untrusted",
                        fix="run as root, or add the user to the incus-admin group")]
    version = (found.get("environment") or {}).get("server_version") or "?"
    return ok("daemon", f"Incus {version} answers on {socket}")


def mounted(path: str, mounts: Path = MOUNTS) -> bool:
    try:
        lines = mounts.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) > 1 and f[1] == path for line in lines)


def live(path: str) -> bool:
    """A FUSE mount whose process died answers "Transport endpoint is not connected"."""
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def lxcfs(h: Host) -> list[Finding]:
    if not h.local:
        return ok("lxcfs", f"not checked here: Incus runs on {h.remote} (make doctor there)")
    if shutil.which("lxcfs", path=h.env.get("PATH")) is None:
        return [Finding("lxcfs", False, "lxcfs is not installed",
                        why="containers see the host's /proc (uptime, memory, CPUs) instead "
                            "of their own limits", fix="make host")]
    where = h.lxcfs_dir
    if mounted(where) and live(where):
        return ok("lxcfs", f"lxcfs serves {where}")
    what = (f"the lxcfs mount {where} is stale (its process is gone)" if mounted(where)
            else f"lxcfs does not serve {where}")
    return [Finding("lxcfs", False, what,
                    why="containers started now see the host's /proc (uptime, memory, CPUs) "
                        "instead of their own limits, until they restart",
                    fix="make host" if where == LXCFS_DIR else
                    f"bash scripts/start-lxcfs.sh {where}",
                    repair=Repair(("bash", "scripts/start-lxcfs.sh", where),
                                  f"started lxcfs on {where}") if h.root_user else None)]


def pool_name(h: Host) -> str:
    return h.setting("incus_projects_storage_pool", "default")


def storage(h: Host) -> list[Finding]:
    if not h.answers():
        return skipped("storage", f"Incus on {h.remote} does not answer")
    name = pool_name(h)
    pool, err = h.query(f"/1.0/storage-pools/{name}")
    if err or not isinstance(pool, dict):
        easy = h.local and name == "default" and h.system_incus
        where = "" if h.local else f"{h.remote}:"
        return [Finding("storage", False, f"storage pool {name} is missing on {h.remote}: {err}",
                        why="every project's root disk lives in it: apply cannot create "
                            "instances", fix="make host" if easy else
                        f"incus storage create {where}{name} dir",
                        repair=Repair(("bash", "scripts/host.sh"), f"created storage pool {name}")
                        if easy and h.root_user else None)]
    status = str(pool.get("status") or "")
    if status != "Created":
        return [Finding("storage", False, f"storage pool {name} is {status or 'in no state'}",
                        why="instances on it cannot start", fix=f"incus storage show {name}")]
    return ok("storage", f"storage pool {name} ({pool.get('driver')}) is ready")


def parse_subids(path: Path, user: str = "root") -> list[tuple[int, int]] | None:
    """USER's (first id, count) ranges in a subuid/subgid file; None when it is absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    found = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, "0" if user == "root" else user):
            continue
        if fields[1].isdigit() and fields[2].isdigit():
            found.append((int(fields[1]), int(fields[2])))
    return found


def subid_problem(path: Path, ranges: list[tuple[int, int]]) -> str:
    """Why root's ranges in PATH cannot map a container, or ""."""
    if not ranges:
        return f"{path} gives root no range: Incus then runs privileged containers only"
    widest = max(count for _, count in ranges)
    if widest < CONTAINER_IDS:
        return (f"{path} gives root at most {widest} ids in one range: an unprivileged "
                f"container needs {CONTAINER_IDS}")
    return ""


def subids(h: Host, files: tuple[Path, Path] = (SUBUID, SUBGID)) -> list[Finding]:
    if not h.local:
        return ok("subids", f"not checked here: Incus runs on {h.remote} (make doctor there)")
    parsed = [(p, parse_subids(p)) for p in files]
    if any(r is None for _, r in parsed):
        # Incus reads root's ranges only when both files exist; else its own default map.
        return ok("subids", "no " + " or ".join(str(p) for p, r in parsed if r is None)
                  + ": Incus maps containers onto its default range")
    problems = [subid_problem(p, r or []) for p, r in parsed]
    if any(problems):
        return [Finding("subids", False, "; ".join(p for p in problems if p),
                        why="Incus reads these ranges when it starts: containers cannot be "
                            "unprivileged without 65536 ids",
                        fix="usermod --add-subuids 1000000-1000999999 --add-subgids "
                            "1000000-1000999999 root, then restart incusd")]
    ranges = parsed[0][1] or []
    start, count = max(ranges, key=lambda r: r[1])
    return ok("subids", f"root has {count} subordinate uids and gids from {start}")


def low(free: int, minimum: int = MIN_FREE) -> bool:
    return free < minimum


def gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


def _pool_free(h: Host) -> tuple[str, int] | None:
    name = pool_name(h)
    pool, err = h.query(f"/1.0/storage-pools/{name}")
    if err or not isinstance(pool, dict):
        return None
    source = str((pool.get("config") or {}).get("source") or "")
    if h.local and pool.get("driver") == "dir" and os.path.isdir(source):
        return f"pool {name}", shutil.disk_usage(source).free
    res, err = h.query(f"/1.0/storage-pools/{name}/resources")
    space = (res or {}).get("space") if isinstance(res, dict) else None
    if err or not isinstance(space, dict):
        return None
    return f"pool {name} on {h.remote}", int(space.get("total", 0)) - int(space.get("used", 0))


def disk(h: Host) -> list[Finding]:
    places: list[tuple[str, int]] = []
    if h.local and os.path.isdir(h.incus_dir):
        places.append((h.incus_dir, shutil.disk_usage(h.incus_dir).free))
    if h.answers() and (pool := _pool_free(h)) is not None:
        places.append(pool)
    if not places:
        return skipped("disk", f"Incus on {h.remote} does not answer")
    short = [(where, free) for where, free in places if low(free)]
    if not short:
        return ok("disk", "free: " + ", ".join(f"{gib(free)} in {where}" for where, free in places))
    return [Finding("disk", False, f"only {gib(free)} free in {where} (doctor wants "
                    f"{gib(MIN_FREE)})",
                    why="images, instances and snapshots fill it; Incus fails half-way "
                        "through an operation when it is full",
                    fix="free space there: unused images (incus image list), old snapshots "
                        "(make snapshot-list, make snapshot-delete), or grow the filesystem")
            for where, free in short]
