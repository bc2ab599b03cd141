"""`make doctor` on a lab tree: healthy after the lab's apply, then each condition broken on
purpose, reported with the command that fixes it, and repaired by FIX=1 where that is safe.

Everything here is the lab's own, so the host and the other tests are never touched:

- owner, project, bridge and container ``t27doc*`` (10.129.0.0/24);
- the image alias ``t27doc/img``, a second alias of anklume/debian-12's image: the test
  deletes and re-creates that alias only, never the image;
- the nftables table ``inet anklume_t27doc`` (``incus_nftables_table`` beside the managed
  section), never the host's ``inet anklume``;
- an lxcfs of its own on /tmp/t27doc-lxcfs, which doctor checks instead of the host's
  (ANKLUME_LXCFS_DIR): killing the host's lxcfs would leave every running container of the
  other tests with a dead /proc/uptime, and restarting it does not mend theirs;
- "Incus does not answer" is a daemon that is not there: INCUS_DIR points the client at an
  empty directory. The host's daemon, which the other tests use, is never stopped; FIX=1
  must not start a second one there either;
- the remotes live in the test's own client configuration (INCUS_CONF): one configured at a
  closed loopback port (a remote added, then gone) and one that is not configured at all
  (never trusted).

"Healthy" is: every check ok, the plan of the applied tree at 0 to create, change, remove.

Own lab: doctor must first find the applied lab healthy (plan at 0, its table loaded, its own
lxcfs and image alias), then the tests kill that lxcfs, delete the table inet anklume_t27doc and
the alias t27doc/img and let FIX=1 repair and rebuild them; another module's lab has none of
these and would not survive their breaking.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from anklume.ops.doctor import CHECKS
from tests.incus_helpers import REPO, delete_by_prefix, lab_tree, run

pytestmark = pytest.mark.incus

PREFIX = "t27doc"
TABLE = "anklume_t27doc"
ALIAS = "t27doc/img"
BASE_IMAGE = "anklume/debian-12"
LXCFS = Path("/tmp/t27doc-lxcfs")
RULES = f"nftables/{TABLE}.nft"
RECORD = f"user.anklume.nftables.{TABLE}.sha256"
NAMES = [name for name, _ in CHECKS]


def infra(remote: str = "local", image: str = ALIAS) -> dict[str, object]:
    return {
        "project_name": PREFIX if remote == "local" else f"{PREFIX}r",
        "global": {"base_subnet": "10.129", "default_os_image": image,
                   "incus_remote": remote, "admin_domain": f"{PREFIX}a"},
        "domains": {f"{PREFIX}a": {
            "description": "doctor lab", "subnet_id": 0, "ephemeral": True,
            "machines": {f"{PREFIX}-a": {"type": "lxc", "ip": "10.129.0.10"}}}},
    }


@dataclass
class Run:
    """One make run. Make exits 2 whenever a recipe fails; its last line names the
    recipe's own status (``make: *** [Makefile:N: doctor] Error 1``): that is ``rc``."""

    make_rc: int
    out: str
    err: str

    @property
    def rc(self) -> int:
        if self.make_rc == 0:
            return 0
        m = re.search(r"^make: \*\*\* \[\S+ \S+\] Error (\d+)$", self.err, re.M)
        assert m, f"make exited {self.make_rc} without a recipe status:\n{self.err}"
        return int(m.group(1))

    def line(self, check: str) -> str:
        """The first report line of CHECK and the why/fix lines under it."""
        lines = self.out.splitlines()
        for i, text in enumerate(lines):
            if not text.startswith(" ") and text.split()[1:2] == [check]:
                block = [text]
                block += [t for t in lines[i + 1:i + 3] if t.startswith(" ")]
                return "\n".join(block)
        raise AssertionError(f"no line for {check} in:\n{self.out}")

    def json(self) -> dict[str, list[dict[str, object]]]:
        data = json.loads(self.out)
        assert isinstance(data, list)
        found: dict[str, list[dict[str, object]]] = {}
        for item in data:
            assert list(item) == ["check", "ok", "what", "why", "fix", "fixed"], item
            found.setdefault(str(item["check"]), []).append(item)
        return found


def make(root: Path, *args: str, timeout: float = 300, **env: str) -> Run:
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args],
                          cwd=root, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1", **env})
    return Run(proc.returncode, proc.stdout, proc.stderr)


def fingerprint(alias: str) -> str:
    info = run(["incus", "image", "info", alias], check=False)
    return next((ln.split()[1] for ln in info.splitlines() if ln.startswith("Fingerprint:")),
                "")


def lxcfs_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"^lxcfs .*{LXCFS}$"], capture_output=True,
                           text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def kill_lxcfs() -> None:
    for pid in lxcfs_pids():
        os.kill(pid, signal.SIGKILL)


def live(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def stop_lxcfs() -> None:
    kill_lxcfs()
    subprocess.run(["umount", "-l", str(LXCFS)], capture_output=True, check=False)
    Path(f"/run/lxcfs{str(LXCFS).replace('/', '-')}.pid").unlink(missing_ok=True)


def cleanup() -> None:
    """The lab's objects, including what an interrupted run left; never anything else."""
    delete_by_prefix(PREFIX)
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    run(["incus", "config", "unset", RECORD], check=False)
    built = fingerprint(ALIAS)
    if built and built != fingerprint(BASE_IMAGE):
        run(["incus", "image", "delete", built], check=False)  # an image FIX=1 built
    run(["incus", "image", "alias", "delete", ALIAS], check=False)
    stop_lxcfs()


def host_table() -> str:
    return subprocess.run(["nft", "-s", "list", "table", "inet", "anklume"],
                          capture_output=True, text=True, check=False).stdout


@dataclass
class Lab:
    root: Path
    env: dict[str, str]

    def doctor(self, *args: str, **env: str) -> Run:
        return make(self.root, "doctor", *args, **{**self.env, **env})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, incus: str) -> Iterator[Lab]:
    before = host_table()
    cleanup()
    root = lab_tree(tmp_path_factory.mktemp(PREFIX))
    (root / "nftables.yml").symlink_to(REPO / "nftables.yml")
    try:
        run(["incus", "image", "alias", "create", ALIAS, fingerprint(incus)])
        (root / "infra.yml").write_text(yaml.safe_dump(infra(), sort_keys=False))
        synced = make(root, "sync")
        assert synced.rc == 0, synced.out + synced.err
        allvars = root / "group_vars" / "all.yml"
        allvars.write_text(allvars.read_text() + f"incus_nftables_table: {TABLE}\n")
        run(["bash", str(REPO / "scripts" / "start-lxcfs.sh"), str(LXCFS)])
        applied = make(root, "apply", timeout=600)
        assert applied.rc == 0, applied.out + applied.err
        yield Lab(root, {"ANKLUME_LXCFS_DIR": str(LXCFS)})
    finally:
        cleanup()
        if LXCFS.is_dir():
            LXCFS.rmdir()
    assert host_table() == before, "the host's table inet anklume was touched"


def test_a_healthy_lab_exits_0_with_one_line_per_check(lab: Lab) -> None:
    start = time.monotonic()
    result = lab.doctor()
    seconds = time.monotonic() - start
    assert result.rc == 0, result.out + result.err
    lines = result.out.splitlines()
    assert [ln.split()[:2] for ln in lines[:-1]] == [["ok", name] for name in NAMES]
    assert lines[-1].startswith("doctor: healthy (13 lines")
    assert "table inet anklume_t27doc matches nftables/anklume_t27doc.nft" in result.out
    assert f"lxcfs serves {LXCFS}" in result.out
    assert f"images   1 image on local: {ALIAS}" in result.out
    assert "plan: 0 to create, 0 to change, 0 to remove" in result.line("drift")
    assert seconds < 60, f"make doctor took {seconds:.1f} s"


def test_json_lists_every_check_with_stable_keys(lab: Lab) -> None:
    result = lab.doctor("JSON=1")
    assert result.rc == 0, result.out + result.err
    found = result.json()
    assert list(found) == NAMES
    assert all(f["ok"] is True and f["fixed"] is False for fs in found.values() for f in fs)


def test_lxcfs_rules_and_image_broken_are_reported_and_fix_1_repairs(lab: Lab) -> None:
    kill_lxcfs()
    deadline = time.monotonic() + 10
    while live(LXCFS):  # the kernel aborts the FUSE connection once lxcfs is gone
        assert time.monotonic() < deadline, "the lab's lxcfs mount did not go stale"
        time.sleep(0.1)
    run(["nft", "delete", "table", "inet", TABLE])
    base = fingerprint(ALIAS)
    run(["incus", "image", "alias", "delete", ALIAS])

    broken = lab.doctor()
    assert broken.rc == 1, broken.out + broken.err
    assert broken.line("lxcfs").split("\n") == [
        f"FAIL  lxcfs    the lxcfs mount {LXCFS} is stale (its process is gone)",
        "               why: containers started now see the host's /proc (uptime, memory, "
        "CPUs) instead of their own limits, until they restart",
        f"               fix: bash scripts/start-lxcfs.sh {LXCFS}   (FIX=1 does it)"]
    rules = broken.line("nftables")
    assert f"FAIL  nftables table inet {TABLE} is not loaded" in rules
    assert f"fix: make nftables-deploy NFT_FILE={RULES}   (FIX=1 does it)" in rules
    image = broken.line("images")
    assert f"FAIL  images   image {ALIAS} is missing on local (used by {PREFIX}-a)" in image
    assert f"fix: make image IMAGE={ALIAS}   (FIX=1 does it)" in image
    assert broken.line("drift").startswith("ok ")
    assert broken.out.splitlines()[-1].startswith(
        "doctor: 3 findings (lxcfs, images, nftables); FIX=1 repairs lxcfs, images, nftables")

    # FIX=1 would build the image afresh (two minutes: test_fix_1_builds_a_missing_image):
    # the alias comes back by hand, and one rule of the table is changed instead of gone.
    run(["incus", "image", "alias", "create", ALIAS, base])
    changed = (lab.root / RULES).read_text().replace("th dport 53 accept", "th dport 54 accept")
    assert "dport 54" in changed
    subprocess.run(["nft", "-f", "-"], input=changed, text=True, check=True)

    fixed = lab.doctor("FIX=1")
    assert fixed.rc == 0, fixed.out + fixed.err
    out = fixed.out
    # The report comes first, as without FIX=1; then each repair; then those checks again.
    assert fixed.line("nftables").startswith(
        f"FAIL  nftables table inet {TABLE} differs from {RULES} (2 lines)")
    assert f"doctor: FIX=1: lxcfs: bash scripts/start-lxcfs.sh {LXCFS}" in out
    assert f"doctor: FIX=1: lxcfs: started lxcfs on {LXCFS}" in out
    assert f"doctor: FIX=1: nftables: loaded {RULES} (table inet {TABLE})" in out
    assert f"fixed lxcfs    lxcfs serves {LXCFS}" in out
    assert f"fixed nftables table inet {TABLE} matches {RULES}" in out
    assert out.splitlines()[-1].startswith("doctor: healthy")
    assert out.splitlines()[-1].endswith("FIX=1 repaired lxcfs, nftables")
    # Repaired for real: a live lxcfs, and the kernel holds the rendered rule again.
    assert live(LXCFS) and (LXCFS / "proc" / "uptime").read_text().strip()
    table = run(["nft", "list", "table", "inet", TABLE])
    assert "th dport 53 accept" in table and "th dport 54 accept" not in table


def test_incus_not_answering_is_reported_and_fix_1_starts_no_daemon(
        lab: Lab, tmp_path: Path) -> None:
    """INCUS_DIR names a directory no daemon serves: the client finds no socket there."""
    nowhere = tmp_path / "no-incus"
    nowhere.mkdir()
    result = lab.doctor("FIX=1", "JSON=1", INCUS_DIR=str(nowhere))
    assert result.rc == 1, result.out + result.err
    found = result.json()
    daemon = found["daemon"][0]
    assert daemon["ok"] is False and daemon["fixed"] is False
    assert f"Incus does not answer on {nowhere}/unix.socket" in str(daemon["what"])
    assert daemon["fix"] == f"start the Incus daemon that serves {nowhere}, or unset INCUS_DIR"
    for name in ("storage", "images", "drift"):
        assert found[name][0]["ok"] is False
        assert str(found[name][0]["what"]).startswith("not checked: Incus on local")
    assert "doctor: FIX=1: nothing here is safe to repair unasked" in result.err
    assert list(nowhere.iterdir()) == [], "FIX=1 started a daemon there"


def test_remotes_gone_or_never_trusted_are_reported_with_their_fix(
        incus: str, tmp_path: Path) -> None:
    """A tree on remote t27doc-dead (configured at a closed loopback port: added, then
    gone) whose image comes from t27doc-gone (not configured: never trusted)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yml").write_text(yaml.safe_dump({
        "default-remote": "local",
        "remotes": {"t27doc-dead": {"addr": "https://127.0.0.1:1", "protocol": "incus",
                                    "auth_type": "tls"}}}))
    env = {"INCUS_CONF": str(conf)}
    run(["incus", "remote", "generate-certificate"], env={**os.environ, **env})
    (tmp_path / "tree").mkdir()
    root = lab_tree(tmp_path / "tree")
    (root / "infra.yml").write_text(yaml.safe_dump(
        infra(remote="t27doc-dead", image="t27doc-gone:img"), sort_keys=False))
    # Not make sync: it takes the lock on the remote, which does not answer.
    run([str(REPO / ".venv" / "bin" / "python"), "scripts/generate.py", "infra.yml"], cwd=root)

    result = make(root, "doctor", **env)
    assert result.rc == 1, result.out + result.err
    report = result.out.split("\n")
    at = {ln.split()[3]: i for i, ln in enumerate(report) if ln.startswith("FAIL  remotes ")}
    dead = at["t27doc-dead"]
    assert report[dead].startswith("FAIL  remotes  remote t27doc-dead (https://127.0.0.1:1) "
                                   "does not answer:")
    assert "connection refused" in report[dead]
    assert "why: the tree's instances live there (global.incus_remote)" in report[dead + 1]
    assert "fix: start Incus on that host" in report[dead + 2]
    gone = at["t27doc-gone"]
    assert report[gone] == "FAIL  remotes  remote t27doc-gone is not configured on this client"
    assert report[gone + 2].strip().startswith("fix: make remote-add REMOTE=t27doc-gone TOKEN=")
    assert result.line("daemon").startswith("ok    daemon   Incus runs on remote t27doc-dead")
    for name in ("storage", "drift"):
        assert result.line(name).startswith(f"--    {name}")

    # Trust needs a token from that host: FIX=1 cannot do it unasked.
    fixed = make(root, "doctor", "FIX=1", **env)
    assert fixed.rc == 1
    assert "doctor: FIX=1: nothing here is safe to repair unasked" in fixed.out


def test_fix_1_builds_a_missing_image(lab: Lab) -> None:
    """The one slow test here (a real debootstrap, one to two minutes): FIX=1 claims to
    build a missing image, so it is proven, not assumed."""
    base = fingerprint(ALIAS)
    run(["incus", "image", "alias", "delete", ALIAS])
    try:
        fixed = lab.doctor("FIX=1", "JSON=1", timeout=900)
        assert fixed.rc == 0, fixed.out + fixed.err
        images = fixed.json()["images"]
        assert [(f["ok"], f["fixed"]) for f in images] == [(True, True)]
        assert f"doctor: FIX=1: images: built and imported {ALIAS}" in fixed.err
        assert fingerprint(ALIAS) not in ("", base)
    finally:
        built = fingerprint(ALIAS)
        if built and built != base:
            run(["incus", "image", "delete", built], check=False)
        if not fingerprint(ALIAS):
            run(["incus", "image", "alias", "create", ALIAS, base])
