#!/usr/bin/env python3
"""Copy this project tree into the admin machine, the controller of ADR-062.

Usage: scripts/admin_tree.py [--force] [--locate]

The admin machine is the first machine of the admin domain whose roles include
admin_bootstrap (ADMIN=<name> picks another one); the tree goes to /root/anklume
(ADMIN_TREE=<path>). A tree already there is the admin's own and is left as is;
--force moves it aside (never deleted) and copies this one. --locate only prints
"PROJECT INSTANCE PATH". Everything goes through the Incus API (incus file push/exec).
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

# The tree is where it runs from (make and up.sh run it from the root): a lab tree links its
# scripts/ to another tree, so this file's own path does not name it.
ROOT = Path.cwd()
# Host-side caches and tools that mean nothing in the admin machine (its virtualenv is
# admin_bootstrap's); .cache/admin_bootstrap is kept so the admin can re-provision itself.
SKIP_NAMES = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
              ".hypothesis", ".bench", ".soak", "logs", "dist", "build", ".ansible", ".ai-sessions"}
SKIP_TOP = {".cache"}
SKIP_PATHS = {"tests/output"}
KEEP_UNDER_SKIPPED = {".cache/admin_bootstrap"}


class Failure(Exception):
    """One line for the user, exit code 2."""


def incus(*args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["incus", *args], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().removeprefix("Error: ")
        raise Failure(f"incus {' '.join(args[:2])} failed: {err}")
    return proc.stdout.decode(errors="replace")


def read_yaml(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise Failure(f"cannot read {path.relative_to(ROOT)}: {exc.strerror}; "
                      "run `make sync` first") from exc
    return data if isinstance(data, dict) else {}


def locate() -> tuple[str, str, str]:
    """(project, instance, path) of the admin machine's tree, from the generated files."""
    allvars = read_yaml(ROOT / "group_vars" / "all.yml")
    admin = str(allvars.get("anklume_admin_domain") or "")
    domains = allvars.get("anklume_domains") or {}
    record = domains.get(admin) if isinstance(domains, dict) else None
    if not isinstance(record, dict):
        raise Failure("infra.yml declares no admin domain (global.admin_domain): there is no "
                      "admin machine to copy the tree into")
    wanted = os.environ.get("ADMIN", "")
    for name in record.get("machines") or []:
        roles = read_yaml(ROOT / "host_vars" / f"{name}.yml").get("instance_roles") or []
        if name == wanted or (not wanted and "admin_bootstrap" in roles):
            return str(record["project"]), str(name), os.environ.get("ADMIN_TREE", "/root/anklume")
    which = f"no machine {wanted}" if wanted else "no machine with the role admin_bootstrap"
    raise Failure(f"the admin domain {admin} has {which}: add the role in infra.yml "
                  "or name the machine with ADMIN=<name>")


def skipped(rel: str) -> bool:
    parts = rel.split("/")
    if any(rel == keep or rel.startswith(keep + "/") or keep.startswith(rel + "/")
           for keep in KEEP_UNDER_SKIPPED):
        return False
    return parts[0] in SKIP_TOP or parts[-1] in SKIP_NAMES or rel in SKIP_PATHS \
        or rel.endswith(".egg-info") \
        or (parts[0] == "nftables" and parts[-1].endswith(".loaded"))


def add_tree(tar: tarfile.TarFile, path: Path, rel: str) -> int:
    """Add PATH as REL; a link that stays inside the tree stays a link (the collection's
    link to the root), any other link is copied as what it points to (a lab's links)."""
    if skipped(rel):
        return 0
    if path.is_symlink():
        target = os.readlink(path)
        inside = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if not os.path.isabs(target) and not inside.startswith(".."):
            info = tarfile.TarInfo(rel)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
            return 1
    if path.is_dir():
        tar.add(path.resolve(), rel, recursive=False)
        children = sorted(path.iterdir())
        return 1 + sum(add_tree(tar, child, f"{rel}/{child.name}") for child in children)
    if path.is_file():
        tar.add(path.resolve(), rel)
        return 1
    return 0


def archive() -> tuple[bytes, int]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        count = sum(add_tree(tar, child, child.name) for child in sorted(ROOT.iterdir()))
    return buffer.getvalue(), count


def main() -> int:
    args = set(sys.argv[1:])
    if args - {"--force", "--locate"}:
        raise Failure(f"unknown argument {sorted(args - {'--force', '--locate'})[0]}: see --help"
                      if "--help" not in args else __doc__.strip())
    project, instance, dest = locate()
    if "--locate" in args:
        print(project, instance, dest)
        return 0
    where = f"{instance}:{dest}"
    exists = incus("exec", instance, "--project", project, "--", "sh", "-c",
                   f"test -e {shlex.quote(dest)} && echo yes || echo no").strip() == "yes"
    if exists and "--force" not in args:
        print(f"admin-tree: {where} exists: it is the admin machine's own tree, left as is "
              "(FORCE=1 moves it aside and copies this one)")
        return 0
    start = time.monotonic()
    data, count = archive()
    aside = f"{dest}.{time.strftime('%Y%m%d-%H%M%S')}"
    move = f"mv {shlex.quote(dest)} {shlex.quote(aside)}; " if exists else ""
    into = shlex.quote(dest)
    script = f"set -e; {move}mkdir -p {into}; tar -xzf - -C {into} --no-same-owner"
    incus("exec", instance, "--project", project, "--", "sh", "-c", script, stdin=data)
    moved = f"; the former tree is kept as {aside}" if exists else ""
    print(f"admin-tree: copied {count} entries ({len(data) // 1024} KiB) to {where} in "
          f"{time.monotonic() - start:.1f}s{moved}")
    print(f"admin-tree: run AnKLuMe there: incus exec {instance} --project {project} "
          f"--cwd {dest} -- make plan")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(pipe_safe(main))
    except Failure as exc:
        print(f"admin-tree: error: {exc}", file=sys.stderr)
        sys.exit(2)
