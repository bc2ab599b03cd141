#!/usr/bin/env python3
"""`make bench` part: backup and restore of the shipped instances (ADR-087, ADR-089) against
plain `incus export` / `incus import` of the same instances, side by side in one run.

- backup: `make backup DOMAIN=<every shipped domain>` (each instance frozen while it is
  read, sha256 of every member, one archive per domain) against `incus export --compression
  zstd` of each instance (the same compression; running, not frozen) and `sync` of its file
  (make backup syncs each archive before its rename), snapshots included on both sides;
  also the same backup encrypted with age.
- restore elsewhere: the archives restored by `make restore-backup AS=<domain>` from a
  throw-away tree (owner t30bench, domains t30k<name> on 10.137.x.0/24, applied without
  instances), so the user's instances are never touched: it verifies the archive, then
  edits each export for its new bridge and name, imports and starts it.
- restore in place: those copies backed up (make backup) and exported (incus export), then
  deleted: one `make restore-backup FILE='<dir>/*'` of the archives against `incus import`
  + `incus start` of each export that ran (restore-backup starts what ran), into the same
  projects.

Ours and plain run in turn first (ours first in even runs): the first to read the disks
after the restores may find them out of the page cache. Seconds over BENCH_BACKUP_RUNS runs
(default 2), and the ratio run by run; the archives' sizes. The shipped infra.yml
must be applied (make apply) for this part to run; everything it makes is deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe
from anklume.ops import tree as trees

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_BACKUP_RUNS", "2"))
PREFIX, BASE = "t30k", "10.137"
LINKS = ("site.yml", "ansible.cfg", "roles", "plugins", "collections", "scripts", "Makefile",
         ".venv", "nftables.yml")


def run(argv: list[str], cwd: Path = REPO) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode:
        sys.exit(f"bench backup: {' '.join(argv)} failed:\n{proc.stdout[-2000:]}"
                 f"{proc.stderr[-2000:]}")
    return time.monotonic() - started


def make(root: Path, *args: str) -> float:
    return run(["make", "--no-print-directory", "-o", ".venv/.installed", *args], root)


def incus(*args: str) -> str:
    return subprocess.run(["incus", *args], capture_output=True, text=True,
                          check=False).stdout


def bench_tree(shipped: trees.Tree) -> Path:
    """A tree with one domain t30k<domain> per shipped domain, its machines renamed as AS=
    renames them, applied without instances."""
    root = Path(tempfile.mkdtemp(prefix="t30bench-"))
    for name in LINKS:
        (root / name).symlink_to(REPO / name)
    domains = {}
    for n, (domain, machines) in enumerate(sorted(shipped.domains.items()), start=1):
        target = PREFIX + domain
        domains[target] = {"subnet_id": n, "ephemeral": True, "machines": {
            f"{target}-{m.removeprefix(domain + '-')}": {"ip": f"{BASE}.{n}.{10 + i}"}
            for i, m in enumerate(machines)}}
    (root / "infra.yml").write_text(yaml.safe_dump(
        {"project_name": "t30bench", "global": {"base_subnet": BASE, "admin_domain": ""},
         "domains": domains}, sort_keys=False))
    make(root, "apply", "TAGS=networks,projects,profiles")
    return root


def clear_instances(domains: list[str]) -> None:
    for domain in domains:
        for item in json.loads(incus("query", f"/1.0/instances?project={domain}") or "[]"):
            name = item.split("?", maxsplit=1)[0].rsplit("/", 1)[1]
            # A restored copy keeps its original's protection until an apply.
            incus("config", "set", "--project", domain, name, "security.protection.delete=false")
            incus("delete", "--force", "--project", domain, name)


def cleanup(root: Path | None, domains: list[str]) -> None:
    clear_instances(domains)
    for domain in domains:
        incus("project", "delete", domain)
        incus("network", "delete", f"net-{domain}")
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def row(name: str, times: list[float], size: float | None) -> str:
    mib = f"{size:>9.0f}" if size is not None else f"{'':>9}"
    return (f"  {name:<46} {min(times):>6.1f} {statistics.median(times):>7.1f} "
            f"{max(times):>6.1f} {mib}")


def mib(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.glob(pattern)) / 2**20


def timed(steps: list[list[str]], cwd: Path = REPO) -> float:
    started = time.monotonic()
    for argv in steps:
        run(argv, cwd)
    return time.monotonic() - started


def main() -> int:
    shipped = trees.load(REPO)
    live = {i.split("?", maxsplit=1)[0].rsplit("/", 1)[1]
            for i in json.loads(incus("query", "/1.0/instances?all-projects=true") or "[]")}
    if not set(shipped.instances) <= live:
        print("  (skipped: the shipped infra.yml is not applied here; make apply first)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="t30bench-out-"))
    identity = work / "identity.txt"
    run(["age-keygen", "-o", str(identity)])
    public = subprocess.run(["age-keygen", "-y", str(identity)], capture_output=True,
                            text=True, check=True).stdout.strip()
    every = ",".join(sorted(shipped.domains))
    targets = [PREFIX + d for d in sorted(shipped.domains)]
    copies = {f"{PREFIX}{i.domain}-{n.removeprefix(i.domain + '-')}": PREFIX + i.domain
              for n, i in sorted(shipped.instances.items())}
    make_cmd = ["make", "--no-print-directory", "-o", ".venv/.installed"]
    root: Path | None = None
    times: dict[str, list[float]] = {k: [] for k in (
        "backup", "backup-age", "export", "elsewhere", "elsewhere-age", "in-place", "import")}
    sizes: dict[str, float] = {}
    running: set[str] = set()
    try:
        cleanup(None, targets)  # leftovers of an interrupted run
        root = bench_tree(shipped)
        for n in range(RUNS):
            runs = {k: work / f"{k}{n}" for k in ("backup", "backup-age", "export", "copies",
                                                  "plain-copies")}
            for folder in runs.values():
                folder.mkdir()
            # The shipped instances: make backup against incus export, in turn first (the
            # first to read the instances' disks after the restores below may find them
            # out of the page cache).
            steps: dict[str, list[list[str]]] = {
                "backup": [[*make_cmd, "backup", f"DOMAIN={every}", f"OUT={runs['backup']}"]],
                "backup-age": [[*make_cmd, "backup", f"DOMAIN={every}",
                                f"OUT={runs['backup-age']}", f"ENCRYPT={public}"]],
                "export": [  # synced, as make backup syncs its archives
                    step for name, inst in sorted(shipped.instances.items()) for step in (
                        ["incus", "export", "--project", inst.project, name,
                         str(runs["export"] / f"{name}.tar.zst"), "--compression", "zstd",
                         "--quiet"],
                        ["sync", str(runs["export"] / f"{name}.tar.zst")])]}
            for key in list(steps)[::-1] if n % 2 else list(steps):
                times[key].append(timed(steps[key]))
            sizes = {k: mib(runs[k], "*") for k in ("backup", "backup-age", "export")}
            # Restored elsewhere (AS=): the user's instances stay untouched.
            for key, folder in (("elsewhere", runs["backup"]),
                                ("elsewhere-age", runs["backup-age"])):
                times[key].append(timed([
                    [*make_cmd, "restore-backup", f"FILE={path}",
                     f"AS={PREFIX}{path.name.split('-', 1)[0]}",
                     *([f"KEY={identity}"] if key == "elsewhere-age" else [])]
                    for path in sorted(folder.iterdir())], root))
                if key == "elsewhere":  # the copies, backed up both ways for the next part
                    make(root, "backup", f"DOMAIN={','.join(targets)}", f"OUT={runs['copies']}")
                    # restore-backup starts what ran when it was backed up: so does the plain
                    # side (a shipped instance found frozen or stopped has a stopped copy).
                    running = {c for c in copies if json.loads(incus(
                        "query", f"/1.0/instances/{c}?project={copies[c]}") or "{}").get(
                        "status") == "Running"}
                    for name, project in copies.items():
                        run(["incus", "export", "--project", project, name,
                             str(runs["plain-copies"] / f"{name}.tar.zst"), "--compression",
                             "zstd", "--quiet"])
                clear_instances(targets)
            # Restored in place (the instances gone, their domains there): against import,
            # in turn first.
            steps = {
                "in-place": [[*make_cmd, "restore-backup",
                              f"FILE={runs['copies']}/*.anklume-backup"]],
                "import": [
                    step for name, project in copies.items() for step in (
                        ["incus", "import", "--project", project,
                         str(runs["plain-copies"] / f"{name}.tar.zst"), name, "--quiet"],
                        *([["incus", "start", "--project", project, name]]
                          if name in running else []))]}
            for key in list(steps)[::-1] if n % 2 else list(steps):
                times[key].append(timed(steps[key], root))
                clear_instances(targets)
            for folder in runs.values():
                shutil.rmtree(folder)
        print(f"  {len(shipped.instances)} shipped instances, {RUNS} run(s); seconds for all "
              "of them")
        print(f"  {'':<46} {'min':>6} {'median':>7} {'max':>6} {'MiB':>9}")
        print(row("make backup (frozen, sums, one archive/domain)", times["backup"],
                  sizes["backup"]))
        print(row("make backup ENCRYPT=age1...", times["backup-age"], sizes["backup-age"]))
        print(row("incus export --compression zstd + sync, each", times["export"],
                  sizes["export"]))
        print(row("make restore-backup, in place", times["in-place"], None))
        print(row("incus import + incus start, each", times["import"], None))
        print(row("make restore-backup AS= (edited for the domain)", times["elsewhere"], None))
        print(row("make restore-backup AS= KEY= (encrypted)", times["elsewhere-age"], None))
        for ours, plain in (("backup", "export"), ("backup-age", "export"),
                            ("in-place", "import"), ("elsewhere", "import")):
            ratio = statistics.median(times[ours]) / statistics.median(times[plain])
            pairs = [a / b for a, b in zip(times[ours], times[plain], strict=True)]
            print(f"  {ours} / {plain}: {ratio:.2f}x (medians); run by run "
                  f"{min(pairs):.2f} {statistics.median(pairs):.2f} {max(pairs):.2f}x "
                  "(min median max)")
    finally:
        cleanup(root, targets)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
