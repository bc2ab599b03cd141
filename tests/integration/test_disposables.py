"""Disposables on the real Incus and nftables (ADR-084): `make disp`, its reaper, the ready
pool, `make disp-clean`, and the isolation a disposable gets (real packets).

One lab (owner ``t28disp``, 10.133.x.0/24, nft table ``anklumet28d``): ``t28da`` is the admin
domain (``t28da-adm``), ``t28db`` allows disposables with one kept ready (``t28db-box``
beside them), ``t28dc`` is another domain (``t28dc-box``) and does not allow them. Applied
once for the module; every test reads Incus before and after.

Own lab: its domain keeps a disposable ready, which the reaper refills after each test and
`make disp-clean FORCE=1` removes at the end, and it loads an nft table of its own to check
real packets; no other module's lab allows disposables.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.incus_helpers import REPO, lab_tree, sync_lab
from tests.integration.reconcile_lab import all_instances, cleanup, wait_for

OWNER = "t28disp"
PREFIX = "t28d"
BASE = "10.133"
TABLE = "anklumet28d"
PORT = 18428
MARK = "user.anklume.disposable"


def description() -> dict[str, Any]:
    def box(domain: str, sid: int) -> dict[str, Any]:
        return {f"{domain}-{'adm' if domain == 't28da' else 'box'}": {
            "type": "lxc", "ip": f"{BASE}.{sid}.10"}}

    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "admin_domain": "t28da"},
        "domains": {
            "t28da": {"subnet_id": 1, "ephemeral": True, "machines": box("t28da", 1)},
            "t28db": {"subnet_id": 2, "ephemeral": True, "disposables": {"preload": 1},
                      "machines": box("t28db", 2)},
            "t28dc": {"subnet_id": 3, "ephemeral": True, "machines": box("t28dc", 3)},
        },
    }


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **extra}

    def make(self, *args: str, rc: int | None = 0, timeout: float = 600
             ) -> tuple[int, str, str]:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=self.root,
            input="", capture_output=True, text=True, timeout=timeout, check=False,
            env=self.env())
        if rc is not None:
            assert proc.returncode == rc, (f"make {' '.join(args)} exited {proc.returncode}, "
                                           f"want {rc}:\n{proc.stdout}\n{proc.stderr}")
        return proc.returncode, proc.stdout, proc.stderr

    def ops(self, target: str, **variables: str) -> subprocess.Popen[str]:
        """The script behind `make TARGET` (what make runs), with its variables."""
        return subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "scripts/ops.py",
                                 target], cwd=self.root, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env(**variables))


def disposables() -> dict[str, dict[str, Any]]:
    """Our disposables by name (every state)."""
    return {name: i for (project, name), i in all_instances().items()
            if project.startswith(PREFIX) and MARK in (i.get("config") or {})}


def used() -> dict[str, dict[str, Any]]:
    return {n: i for n, i in disposables().items() if i["config"][MARK] == "used"}


def ready() -> dict[str, dict[str, Any]]:
    return {n: i for n, i in disposables().items()
            if i["config"][MARK] == "ready" and i["status"] == "Running"}


def serve(name: str, project: str) -> None:
    """A TCP listener on PORT inside NAME, left running."""
    subprocess.run(["incus", "exec", name, "--project", project, "--", "sh", "-c",
                    f"nohup python3 -m http.server {PORT} >/dev/null 2>&1 &"], check=True)


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, TABLE)
    lab = Lab(tmp_path_factory.mktemp("t28disp"))
    try:
        sync_lab(lab.root, description(), TABLE)
        lab.make("apply")
        serve("t28db-box", "t28db")
        serve("t28dc-box", "t28dc")
        wait_for(lambda: len(ready()) == 1, timeout=120)
        yield lab
    finally:
        cleanup(PREFIX, TABLE)


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP service of the host on every address, as a service bound to all addresses is."""
    server = socket.create_server(("0.0.0.0", PORT + 1))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield PORT + 1
    finally:
        stop.set()
        thread.join()
        server.close()


def test_a_failing_command_fails_with_its_status_in_the_reserved_range(lab: Lab) -> None:
    proc = lab.ops("disp", DOMAIN="t28db", CMD="ip -4 -o addr show dev eth0; exit 7")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 7, err
    address = out.split("inet ")[1].split("/")[0]
    assert address.startswith(f"{BASE}.2.") and 200 <= int(address.rsplit(".", 1)[1]) <= 249
    assert "exited with status 7" in err
    _, _, make_err = lab.make("disp", "DOMAIN=t28db", "CMD=exit 7", rc=2)
    assert "exited with status 7" in make_err
    wait_for(lambda: not used(), timeout=10)


def test_a_file_goes_in_and_only_the_outgoing_folder_comes_back(
        lab: Lab, tmp_path: Path) -> None:
    given = tmp_path / "report.txt"
    given.write_bytes(b"untrusted content\n" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    proc = lab.ops("disp", DOMAIN="t28db", FILE=str(given), OUT=str(out),
                   CMD='sha256sum "$FILE" | cut -d" " -f1 > "$OUT/sum"; echo x > /root/stays')
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert sorted(p.name for p in out.rglob("*")) == ["Outgoing", "sum"]
    assert (out / "Outgoing" / "sum").read_text().strip() == hashlib.sha256(
        given.read_bytes()).hexdigest()
    wait_for(lambda: not used(), timeout=10)


def test_without_a_command_it_is_a_shell_that_goes_with_its_end(lab: Lab) -> None:
    """The interactive path, on a terminal (`script` gives the client one): the user types
    once the shell's prompt shows (a terminal in raw mode drops what was typed ahead); the
    lines run in the disposable's login shell, whose exit status make disp returns."""
    python = REPO / ".venv" / "bin" / "python"
    proc = subprocess.Popen(["script", "-qec", f"{python} scripts/ops.py disp", "/dev/null"],
                            cwd=lab.root, env=lab.env(DOMAIN="t28db"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 120
    while b":~# " not in seen and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 1)[0]:
            seen += os.read(proc.stdout.fileno(), 4096)
    assert b":~# " in seen, seen
    proc.stdin.write(b"cat /etc/hostname\nexit 3\n")
    proc.stdin.flush()
    rest, _ = proc.communicate(timeout=60)
    lines = (seen + rest).decode(errors="replace").splitlines()
    assert proc.returncode == 3, lines
    assert any(line.strip().startswith("t28db-disp") for line in lines), lines
    wait_for(lambda: not used(), timeout=10)


def test_isolation_is_the_domains(lab: Lab, host_listener: int) -> None:
    """The disposable reaches its own domain's machine, not another domain's nor the host;
    the admin machine reaches it (a listener it runs while the test probes it)."""
    targets = [("own", f"{BASE}.2.10", PORT), ("other", f"{BASE}.3.10", PORT),
               ("host", f"{BASE}.2.254", host_listener)]
    probe = (f"import socket\nfor name, addr, port in {targets!r}:\n"
             "    try:\n"
             "        socket.create_connection((addr, port), 2).close(); print(name, 'open')\n"
             "    except OSError:\n"
             "        print(name, 'closed')\n")
    command = (f"cat > /tmp/probe.py <<'EOF'\n{probe}EOF\npython3 /tmp/probe.py; "
               f"python3 -m http.server {PORT} >/dev/null 2>&1 & "
               "timeout 60 sh -c 'until [ -e /tmp/probed ]; do sleep 0.5; done'; true")
    proc = lab.ops("disp", DOMAIN="t28db", CMD=command)
    try:
        name = wait_for(lambda: next(iter(used()), None), timeout=60)
        addr = f"{BASE}.2.{name.rsplit('disp', 1)[1]}"  # its name holds its host octet
        # The anti-spoofing filters of every eth0 (ADR-059), with its reserved address.
        eth0 = all_instances()[("t28db", name)]["expanded_devices"]["eth0"]
        assert {k: eth0.get(k) for k in ("network", "ipv4.address", "security.mac_filtering",
                                          "security.ipv4_filtering", "security.ipv6_filtering")
                } == {"network": "net-t28db", "ipv4.address": addr,
                      "security.mac_filtering": "true", "security.ipv4_filtering": "true",
                      "security.ipv6_filtering": "true"}
        script = f"import socket; socket.create_connection(({addr!r}, {PORT}), 2).close()"
        local = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 2).close()"

        def listening() -> bool:  # the probe ran, then the listener started (a loaded host)
            return subprocess.run(["incus", "exec", name, "--project", "t28db", "--", "python3",
                                   "-c", local], check=False, capture_output=True).returncode == 0
        assert wait_for(listening, timeout=60)

        def admin_reaches() -> bool:
            return subprocess.run(["incus", "exec", "t28da-adm", "--project", "t28da", "--",
                                   "python3", "-c", script], check=False,
                                  capture_output=True).returncode == 0
        assert wait_for(admin_reaches, timeout=10)
        dc = subprocess.run(["incus", "exec", "t28dc-box", "--project", "t28dc", "--",
                             "python3", "-c", script], check=False, capture_output=True)
        assert dc.returncode != 0, "another domain reached the disposable"
        subprocess.run(["incus", "exec", name, "--project", "t28db", "--", "touch",
                        "/tmp/probed"], check=True)
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert {line.split()[0]: line.split()[1] for line in out.splitlines()} == {
        "own": "open", "other": "closed", "host": "closed"}


def test_a_killed_client_leaves_nothing_behind(lab: Lab) -> None:
    proc = lab.ops("disp", DOMAIN="t28db", CMD="sleep 300")
    name = wait_for(lambda: next(iter(used()), None), timeout=60)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: name not in disposables(), timeout=15)
    # Its `incus exec`, orphaned by the kill, ends with the instance.
    proc.communicate(timeout=30)
    assert time.monotonic() - killed < 30


def test_the_ttl_ends_a_disposable_that_runs_on(lab: Lab) -> None:
    started = time.monotonic()
    proc = lab.ops("disp", DOMAIN="t28db", CMD="sleep 120", TTL="8s")
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - started < 40
    wait_for(lambda: not used(), timeout=10)


def test_a_ready_one_serves_once_and_another_is_made_behind(lab: Lab) -> None:
    wait_for(lambda: len(ready()) == 1, timeout=120)
    [(first, inst)] = ready().items()
    uuid = inst["config"]["volatile.uuid"]
    proc = lab.ops("disp", DOMAIN="t28db", CMD="echo served")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == "served"
    assert f"{first} (ready" in err
    fresh = wait_for(lambda: next(iter(ready().values()), None), timeout=120)
    assert fresh["config"]["volatile.uuid"] != uuid, "a used disposable was offered again"


def test_two_at_once_never_share_one(lab: Lab) -> None:
    """Two `make disp` started together while one is ready: one claims it, the other gets
    a new one; each command runs in a machine of its own."""
    wait_for(lambda: len(ready()) == 1, timeout=120)
    procs = [lab.ops("disp", DOMAIN="t28db", CMD="cat /etc/hostname; sleep 2")
             for _ in range(2)]
    answers = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], answers
    names = {out.strip() for out, _ in answers}
    assert len(names) == 2 and all(n.startswith("t28db-disp") for n in names), answers
    assert sorted("(ready" in err for _, err in answers) == [False, True], answers
    wait_for(lambda: not used(), timeout=10)


def test_status_lists_them_and_prune_leaves_them(lab: Lab) -> None:
    wait_for(lambda: len(ready()) == 1, timeout=120)
    [name] = ready()
    _, out, _ = lab.make("status")
    assert name in out and "ready" in out
    _, out, _ = lab.make("apply", "PRUNE=1")
    assert name in ready(), "the apply removed a ready disposable"
    assert name not in out


def test_a_domain_that_does_not_allow_them_is_refused(lab: Lab) -> None:
    before = disposables()
    _, _, err = lab.make("disp", "DOMAIN=t28dc", "CMD=true", rc=2)
    assert "domain t28dc does not allow disposables" in err
    assert len([line for line in err.splitlines() if not line.startswith("make: ***")]) == 1
    assert disposables().keys() == before.keys()


def test_disp_clean_force_removes_every_one(lab: Lab) -> None:
    wait_for(lambda: len(ready()) == 1, timeout=120)
    lab.make("disp-clean")
    assert ready(), "disp-clean removed a ready one without FORCE=1"
    lab.make("disp-clean", "FORCE=1")
    assert not disposables()


def test_destroy_of_the_domain_takes_its_disposables_with_it(lab: Lab) -> None:
    """Last: `make apply` refills the pool, then the domain is destroyed with it."""
    lab.make("apply")
    wait_for(lambda: len(ready()) == 1, timeout=120)
    _, out, _ = lab.make("destroy", "DOMAIN=t28db")
    assert "disposable t28db-disp" in out
    assert not disposables()
    projects = subprocess.run(["incus", "project", "list", "-f", "csv"], capture_output=True,
                              text=True, check=True).stdout
    assert "t28db," not in projects and "t28da," in projects
