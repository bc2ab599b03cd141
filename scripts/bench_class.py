#!/usr/bin/env python3
"""`make bench` class table (issue 18): a class declared by one domain template against the
same infra written out by hand, for `make sync` and a cold `make apply TAGS=infra`.

Both forms describe the same objects: an admin domain b18adm (b18-teacher, 10.181.1.10)
and N student domains b18c01..b18cNN, each with one container b18cNN-srv at
10.181.(10+N).10 (nft table anklumeb18, owner b18bench). Every b18 object is removed
before and after, and between the two cold applies. The template form also times the
class-wide `make destroy DOMAIN=b18c`.

Usage: scripts/bench_class.py [N]   (default 24; BENCH_CLASS_SIZE too)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from anklume.errors import pipe_safe

# The lab helpers the integration tests use: one way to build, run and clean a lab tree.
from tests.incus_helpers import REPO, delete_by_prefix, lab_make, lab_tree, run

PREFIX, OWNER, BASE, NFT = "b18", "b18bench", "10.181", "anklumeb18"
TEMPLATE, ADMIN = "b18c", "b18adm"
SYNC_RUNS = 9


def log(msg: str) -> None:
    print(f"bench_class: {msg}", file=sys.stderr, flush=True)


def cleanup() -> None:
    """Remove every b18 object, leftovers of an interrupted run included."""
    delete_by_prefix(PREFIX)
    subprocess.run(["nft", "delete", "table", "inet", NFT], capture_output=True, check=False)


def head() -> dict[str, object]:
    return {"project_name": OWNER,
            "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                       "admin_domain": ADMIN},
            "domains": {ADMIN: {"subnet_id": 1, "ephemeral": False,
                                "machines": {"b18-teacher": {"ip": f"{BASE}.1.10"}}}}}


def templated(count: int) -> dict[str, object]:
    infra = head()
    infra["domain_templates"] = {TEMPLATE: {
        "count": count, "first_subnet_id": 11, "description": "Student {n}",
        "ephemeral": True, "machines": {"srv": {"ip_host": 10}}}}
    return infra


def by_hand(count: int) -> dict[str, object]:
    infra = head()
    domains = infra["domains"]
    assert isinstance(domains, dict)
    for n in range(1, count + 1):
        name = f"{TEMPLATE}{n:02d}"
        domains[name] = {"description": f"Student {n:02d}", "subnet_id": 10 + n,
                         "ephemeral": True,
                         "machines": {f"{name}-srv": {"ip": f"{BASE}.{10 + n}.10"}}}
    return infra


def lab(work: Path, name: str, infra: dict[str, object]) -> Path:
    root = work / name
    root.mkdir()
    lab_tree(root)
    (root / "infra.yml").write_text(yaml.safe_dump(infra, sort_keys=False))
    return root


def sync_seconds(roots: list[Path]) -> list[float]:
    """Median wall time of a sync into an empty tree, per root; the runs alternate between
    the roots so that a busy moment weighs on both alike."""
    times: list[list[float]] = [[] for _ in roots]
    for i in range(SYNC_RUNS):
        for root, took in zip(roots, times, strict=True):
            out = root / f"sync{i}"
            start = time.monotonic()
            run([str(REPO / ".venv/bin/python"), str(REPO / "scripts/generate.py"),
                 str(root / "infra.yml"), "--output", str(out)])
            took.append(time.monotonic() - start)
            shutil.rmtree(out)
    return [statistics.median(t) for t in times]


def make(root: Path, *args: str) -> float:
    start = time.monotonic()
    rc, out = lab_make(root, *args, timeout=3600)
    took = time.monotonic() - start
    if rc != 0:
        sys.stderr.write(out)
        raise SystemExit(f"bench_class: make {' '.join(args)} failed (rc {rc})")
    return took


def cold(root: Path) -> float:
    make(root, "sync")
    allvars = root / "group_vars" / "all.yml"
    allvars.write_text(allvars.read_text() + f"incus_nftables_table: {NFT}\n")
    return make(root, "apply", "TAGS=infra")


def main() -> None:
    count = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_CLASS_SIZE", "24"))
    work = Path(tempfile.mkdtemp(prefix="anklume-bench-class."))
    rows: dict[str, list[str]] = {}
    try:
        forms = {"template": templated(count), "by hand": by_hand(count)}
        roots = {form: lab(work, form.replace(" ", "-"), infra) for form, infra in forms.items()}
        syncs = dict(zip(forms, sync_seconds(list(roots.values())), strict=True))
        for form, root in roots.items():
            infra_lines = len((root / "infra.yml").read_text().splitlines())
            cleanup()
            log(f"{form}: cold make apply TAGS=infra, {count + 1} instances")
            apply = cold(root)
            destroy = "-"
            if form == "template":
                log(f"{form}: make destroy DOMAIN={TEMPLATE}")
                destroy = f"{make(root, 'destroy', f'DOMAIN={TEMPLATE}'):.1f}"
            cleanup()
            rows[form] = [str(infra_lines), f"{syncs[form]:.2f}", f"{apply:.1f}", destroy]
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    columns = ("infra lines", "sync s", "cold apply s", "destroy class s")
    lines = [
        f"bench_class: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {os.cpu_count()} "
        f"cores, {run(['incus', '--version']).strip()}, load {' '.join(load)}",
        f"a class of {count} students (one container each) + an admin domain; sync = median "
        f"of {SYNC_RUNS} runs into an empty tree; cold apply = make apply TAGS=infra on nothing",
        f"{'form':<10}" + "".join(f"{c:>17}" for c in columns),
    ]
    for form, row in rows.items():
        lines.append(f"{form:<10}" + "".join(f"{v:>17}" for v in row))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out_dir = REPO / ".bench"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "class.txt").write_text(text)


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
