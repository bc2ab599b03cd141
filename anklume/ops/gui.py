"""`make gui`, `make gui-list` and `make gui-stop` (ADR-091, docs/desktop.md).

`make gui I=m APP=cmd`: the apps of a `gui: true` machine on this desktop. The machine runs
an xpra server on a display of its own; an Incus proxy device (``anklume-gui``) brings its
socket to this host; an xpra client here shows its windows, each with the domain's colour
as border and ``[domain]`` before its title, drawn here where the machine cannot change
them. Each step is done only when missing, so a second app comes at once. The machine
never gets a socket of this host's display.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from anklume.model import GUI_DEVICE
from anklume.ops import gui_xpra as xpra
from anklume.ops.context import Context
from anklume.ops.disp_live import start_time
from anklume.ops.instances import address, incus, listing, missing, one
from anklume.ops.problems import refuse
from anklume.ops.tree import Instance, Tree

# How long a new server may take to answer through the proxy (a loaded host).
SERVER_WAIT = 30.0
# The colour of a domain whose record has none (a tree rendered before ADR-090).
FALLBACK_COLOR = "#555753"


@dataclass(frozen=True)
class Session:
    """A gui machine and the host files of its session."""

    inst: Instance
    domain: str
    color: str
    base: Path

    @property
    def socket(self) -> Path:
        return self.base.parent / f"{self.base.name}.sock"

    @property
    def pidfile(self) -> Path:
        return self.base.parent / f"{self.base.name}.client"

    @property
    def log(self) -> Path:
        return self.base.parent / f"{self.base.name}.log"


def _session(tree: Tree, inst: Instance, root: Path | None = None) -> Session:
    rec = (tree.raw.get("anklume_domains") or {}).get(inst.domain) or {}
    color = str(rec.get("color_hex") or FALLBACK_COLOR)
    return Session(inst, inst.domain, color,
                   xpra.session(inst.project, inst.name, root or xpra.HOST_DIR))


def _exec(tree: Tree, inst: Instance, *command: str, env: dict[str, str] | None = None
          ) -> list[str]:
    """`incus exec` of COMMAND in the machine, with ENV set."""
    options = [a for k, v in (env or {}).items() for a in ("--env", f"{k}={v}")]
    return ["incus", "exec", "--project", inst.project, address(tree, inst.name), *options,
            "--", *command]


def _gui_machine(ctx: Context, verb: str) -> tuple[Tree, Instance]:
    """The one machine I= names: declared `gui: true`, on this host's Incus."""
    inst = one(ctx, verb)
    tree = ctx.tree()
    if not inst.gui:
        raise refuse(f"machine {inst.name} does not declare gui: true",
                     f"add `gui: true` to domains.{inst.domain}.machines.{inst.name} in "
                     "infra.yml, then make image and make apply")
    if tree.remote != "local":
        raise refuse(f"make {verb} shows the apps of this host's Incus only; the tree uses "
                     f"Incus '{tree.remote}'", "run it on the host that runs the machine")
    return tree, inst


def _devices(ctx: Context, tree: Tree, inst: Instance) -> tuple[str, dict[str, dict[str, str]]]:
    """The instance's status and local devices (one query)."""
    url = f"/1.0/instances/{inst.name}?project={inst.project}"
    rc, out = incus(ctx, ["incus", "query", url], timeout=30)
    if rc != 0:
        raise refuse(missing(tree, inst), "")
    data = json.loads(out or "{}")
    return str(data.get("status") or ""), dict(data.get("devices") or {})


def _host_tools(ctx: Context) -> str:
    """The user's display; refused when this host cannot show a window."""
    if shutil.which("xpra", path=xpra.CLIENT_PATH) is None:
        raise refuse("xpra is not installed on this host: it shows the machine's windows",
                     "apt-get install xpra python3-gi-cairo")
    display = os.environ.get("DISPLAY", "")
    if not display:
        raise refuse("DISPLAY is not set: make gui opens windows on your desktop",
                     "run it from a terminal of your desktop session (or set DISPLAY=:0)")
    return display


@contextlib.contextmanager
def _locked(s: Session) -> Iterator[None]:
    """One `make gui` at a time per machine: two would start two servers or two clients."""
    s.base.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(s.base.parent / f"{s.base.name}.lock", "w", encoding="utf-8") as hold:
        fcntl.flock(hold, fcntl.LOCK_EX)
        yield


def _ensure_device(ctx: Context, tree: Tree, s: Session,
                   devices: dict[str, dict[str, str]]) -> bool:
    """The proxy device that brings the machine's xpra socket here; True when added."""
    want = {"bind": "host", "listen": f"unix:{s.socket}",
            "connect": f"unix:{xpra.SERVER_SOCKET}", "mode": "0600",
            "uid": str(os.getuid()), "gid": str(os.getgid())}
    have = devices.get(GUI_DEVICE)
    if have is not None and all(have.get(k) == v for k, v in want.items()):
        return False
    where = ["--project", s.inst.project, address(tree, s.inst.name), GUI_DEVICE]
    if have is not None:  # another listen path or owner: made again
        incus(ctx, ["incus", "config", "device", "remove", *where], timeout=60)
    rc, out = incus(ctx, ["incus", "config", "device", "add", *where, "proxy",
                          *(f"{k}={v}" for k, v in want.items())], timeout=60)
    if rc != 0:
        raise refuse(f"cannot give {s.inst.name} its gui device: {out}",
                     "make doctor checks the host")
    return True


def _answers(s: Session) -> bool:
    """Whether the machine's xpra server answers through the host socket."""
    if not s.socket.exists():
        return False
    proc = subprocess.run(xpra.probe_argv(s.socket), capture_output=True, check=False,
                          env=_client_env(os.environ.get("DISPLAY", "")), timeout=30)
    return proc.returncode == 0


def _ensure_server(ctx: Context, tree: Tree, s: Session) -> bool:
    """The machine's xpra server, started when none answers; True when started."""
    if _answers(s):
        return False
    rc, _ = incus(ctx, _exec(tree, s.inst, "sh", "-c", "command -v xpra"), timeout=60)
    if rc != 0:
        image = f"{tree.raw.get('anklume_default_os_image') or 'anklume/debian-12'}-gui"
        raise refuse(f"machine {s.inst.name} has no xpra: it was not made from the gui image",
                     f"make image builds {image}; then recreate the machine from it "
                     f"(make delete I={s.inst.name} FORCE=1 && make apply)")
    start = " ".join(xpra.server_argv(s.inst.audio, s.inst.microphone))
    rc, _ = incus(ctx, _exec(tree, s.inst, "sh", "-c",
                             f"mkdir -p {xpra.SERVER_DIR} && mkdir -p -m 0700 "
                             f"{xpra.RUNTIME_DIR} {xpra.RUNTIME_DIR}/xpra && "
                             f"XDG_RUNTIME_DIR={xpra.RUNTIME_DIR} "
                             f"exec {start} >{xpra.SERVER_DIR}/start.log 2>&1"), timeout=120)
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        if _answers(s):
            return True
        if rc != 0:  # it did not start (another one may have: it answers then)
            break
        time.sleep(0.2)
    _, log = incus(ctx, _exec(tree, s.inst, "tail", "-5", f"{xpra.SERVER_DIR}/start.log"))
    raise refuse(f"the xpra server of {s.inst.name} does not answer: {' '.join(log.split())}",
                 f"its log is {xpra.SERVER_DIR}/*.log in the machine (make shell I="
                 f"{s.inst.name})")


def _client_env(display: str) -> dict[str, str]:
    keep = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "XAUTHORITY", "XDG_RUNTIME_DIR",
            "WAYLAND_DISPLAY")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=xpra.CLIENT_PATH, DISPLAY=display)
    return env


def client_pid(s: Session) -> int | None:
    """The pid of the session's host client while it runs, else None."""
    try:
        rec = json.loads(s.pidfile.read_text(encoding="utf-8"))
        pid, started = int(rec["pid"]), str(rec["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if started and start_time(pid) == started else None


def _ensure_client(s: Session, display: str) -> bool:
    """The host client of the session, started detached when none runs; True when
    started. It outlives make (a session of its own) and ends with the server."""
    if client_pid(s) is not None:
        return False
    with open(s.log, "ab") as log:
        proc = subprocess.Popen(xpra.client_argv(s.socket, s.domain, s.color, s.inst.audio,
                                                 s.inst.microphone),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=_client_env(display), start_new_session=True,
                                cwd="/")
    tmp = s.base.parent / f"{s.base.name}.client.tmp"
    tmp.write_text(json.dumps({"pid": proc.pid, "start": start_time(proc.pid),
                               "display": display}), encoding="utf-8")
    tmp.replace(s.pidfile)
    return True


def _start_app(ctx: Context, tree: Tree, s: Session, app: str) -> None:
    """APP on the machine's display, in a session of its own (it outlives make)."""
    script = ('prog=${ANKLUME_APP%% *}; case $prog in *=*) ;; *) command -v "$prog" '
              '>/dev/null || exit 127;; esac; exec setsid -f sh -c "$ANKLUME_APP" '
              f'</dev/null >>{xpra.SERVER_DIR}/apps.log 2>&1')
    rc, out = incus(ctx, _exec(tree, s.inst, "sh", "-c", script,
                               env={**xpra.app_env(s.inst.audio), "ANKLUME_APP": app}),
                timeout=60)
    if rc == 127:
        raise refuse(f"APP={app}: {app.split()[0]} is not found in {s.inst.name}",
                     "name a program of the machine (it has no network: add packages to "
                     "its image)")
    if rc != 0:
        raise refuse(f"APP={app} could not be started in {s.inst.name}: {out}", "")


def run(ctx: Context) -> int:
    tree, inst = _gui_machine(ctx, "gui")
    display = _host_tools(ctx)
    app = ctx.get("APP").strip()
    status, devices = _devices(ctx, tree, inst)
    if status != "Running":
        raise refuse(f"instance {inst.name} (project {inst.project}) is {status}",
                     f"make start I={inst.name}")
    s = _session(tree, inst)
    began = time.monotonic()
    with _locked(s):
        steps = []
        if _ensure_device(ctx, tree, s, devices):
            steps.append("device added")
        if _ensure_server(ctx, tree, s):
            steps.append("xpra server started")
        if _ensure_client(s, display):
            steps.append(f"client started on {display}")
    _start_app(ctx, tree, s, app)
    done = ", ".join(steps) if steps else "session already running"
    sound = ("; sound on, microphone " + ("on" if inst.microphone else "off")
             if inst.audio else "")
    print(f"gui: {app} started in {inst.name} ({done}; {time.monotonic() - began:.1f} s): its "
          f"windows open marked [{s.domain}] in {s.color}{sound}", file=ctx.out)
    return 0


def rows(ctx: Context, tree: Tree) -> list[tuple[str, ...]]:
    """One row per gui machine: name, domain, colour, state, device, server, client."""
    live = {(str(i.get("project") or "default"), str(i["name"])): i
            for i in listing(ctx, tree)}
    found: list[tuple[str, ...]] = []
    for name in sorted(n for n, i in tree.instances.items() if i.gui):
        inst = tree.instances[name]
        s = _session(tree, inst)
        item = live.get((inst.project, inst.name)) or {}
        device = GUI_DEVICE in (item.get("devices") or {})
        server = "answers" if device and _answers(s) else "-"
        pid = client_pid(s)
        found.append((name, inst.domain, s.color, str(item.get("status") or "absent"),
                     "yes" if device else "-", server, str(pid) if pid else "-"))
    return found


def show(ctx: Context) -> int:
    tree = ctx.tree()
    found = rows(ctx, tree)
    if not found:
        print("gui-list: no machine declares gui: true", file=ctx.out)
        return 0
    head = ("MACHINE", "DOMAIN", "COLOUR", "STATE", "DEVICE", "SERVER", "CLIENT")
    widths = [max(len(r[i]) for r in (head, *found)) for i in range(len(head))]
    for r in (head, *found):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(),
              file=ctx.out)
    return 0


def _stop_client(s: Session) -> bool:
    pid = client_pid(s)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and client_pid(s) is not None:
        time.sleep(0.1)
    if client_pid(s) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def stop(ctx: Context) -> int:
    """End the session of I=: the host client, the server (its apps go with their
    display), the proxy device and the host files."""
    tree, inst = _gui_machine(ctx, "gui-stop")
    s = _session(tree, inst)
    status, devices = _devices(ctx, tree, inst)
    done = []
    with _locked(s):
        if status == "Running" and _answers(s):
            incus(ctx, _exec(tree, inst, *xpra.stop_argv()), timeout=60)
            done.append("xpra server stopped")
        if _stop_client(s):
            done.append("host client ended")
        if GUI_DEVICE in devices:
            rc, out = incus(ctx, ["incus", "config", "device", "remove", "--project",
                                  inst.project, address(tree, inst.name), GUI_DEVICE])
            if rc != 0:
                raise refuse(f"cannot remove the gui device of {inst.name}: {out}", "")
            done.append("device removed")
        for path in (s.socket, s.pidfile):
            path.unlink(missing_ok=True)
    print(f"gui-stop: {inst.name}: {', '.join(done) or 'no session was running'}",
          file=ctx.out)
    return 0

