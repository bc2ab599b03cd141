"""gui machines on the real Incus (ADR-091): `make gui`, `gui-list`, `gui-stop`, with an
Xvfb of the test's own as the user's desktop.

One lab (owner ``t29gui``, 10.136.x.0/24, nft table ``anklumet29g``): ``t29gb`` (blue) holds
``t29gb-app`` and ``t29gc`` (red) holds ``t29gc-app``, both `gui: true`, so both come from
the gui image (``anklume/debian-12-gui``, built here when missing and kept, as the base
image is). What is checked is what the user sees: the window found by its title on the
desktop, the border's pixels in a screenshot, what each machine can reach, what `make clip`
carries between the two clipboards (``clipboard_policies``: t29gb to t29gc only), and the
domain colour of `make status` and `make shell`'s prompt under a pty (`script`).

Own lab: its machines come from the gui image, which no other lab uses, and the tests
start and stop xpra sessions and add the session's proxy device to them.

Timings (cold: no session; warm: a second app) are printed (pytest -s) and written to
``logs/gui-timings.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from anklume import colors
from anklume.ops import clip, gui_xpra
from tests.incus_helpers import REPO, lab_make, lab_tree, sync_lab
from tests.integration.reconcile_lab import cleanup, incus_query, wait_for

OWNER = "t29gui"
PREFIX = "t29g"
BASE = "10.136"
TABLE = "anklumet29g"
GUI_IMAGE = "anklume/debian-12-gui"
COLORS = {"t29gb": "blue", "t29gc": "red"}
HEX = {"blue": "#3465a4", "red": "#cc0000"}  # QubesOS's labels (anklume/colors.py)
TIMINGS: dict[str, list[float]] = {}

TOOLS = ("xpra", "Xvfb", "xdotool", "import", "xclip", "pulseaudio")


def tools() -> None:
    """The host's xpra client and the test's own X tools (scripts/test.sh installs them):
    a failure in CI, a skip with the apt line elsewhere."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        why = (f"{', '.join(missing)} missing on the host (apt-get install xpra "
               "python3-gi-cairo xvfb xdotool imagemagick x11-utils xclip pulseaudio "
               "python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-pulseaudio)")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(why)


# Sound (issue 29): t29gb-tune declares audio, t29gc-call audio and the microphone; the
# two -app machines declare neither. There is no sound card here: what is checked is what
# each xpra server was started with, whether its pulseaudio runs, and what the server says
# of its client's speaker and microphone.
SOUND = {"t29gb-tune": {"audio": True}, "t29gc-call": {"audio": True, "microphone": True}}
MACHINES = ("t29gb-app", "t29gc-app", *SOUND)


def description() -> dict[str, Any]:
    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12"},
        "domains": {
            d: {"subnet_id": sid, "ephemeral": True, "color": COLORS[d],
                "machines": {f"{d}-app": {"type": "lxc", "ip": f"{BASE}.{sid}.10",
                                          "gui": True},
                             sound: {"type": "lxc", "ip": f"{BASE}.{sid}.11", "gui": True,
                                     **SOUND[sound]}}}
            for d, sid, sound in (("t29gb", 1, "t29gb-tune"), ("t29gc", 2, "t29gc-call"))},
        # make clip: blue's clipboard text may go to red, nothing comes back.
        "clipboard_policies": [{"from": "t29gb", "to": "t29gc",
                                "description": "blue to red only"}],
    }


class Desktop:
    """An Xvfb on a free display: the user's screen; and a pulseaudio with a null sink and a
    null source in a runtime directory of its own (XDG_RUNTIME_DIR, as a desktop
    session's): the user's sound server, speakers and microphone, with no sound card."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        runtime.chmod(0o700)
        self.sound = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--system=false", "--exit-idle-time=-1",
             "--load=module-null-sink sink_name=t29desk",
             "--load=module-null-source source_name=t29mic",
             "--load=module-native-protocol-unix"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)})
        wait_for(lambda: (runtime / "pulse" / "native").exists(), timeout=20)
        self.number = next(n for n in range(57, 90)
                           if not Path(f"/tmp/.X11-unix/X{n}").exists()
                           and not Path(f"/tmp/.X{n}-lock").exists())
        self.display = f":{self.number}"
        self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", "1280x800x24",
                                      "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: self.run("xdpyinfo").returncode == 0, timeout=20)

    def run(self, *argv: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, input=text,
                              check=False, timeout=30, env={**os.environ,
                                                             "DISPLAY": self.display})

    def windows(self, pattern: str) -> list[str]:
        """Visible windows whose title matches PATTERN (a regular expression)."""
        proc = self.run("xdotool", "search", "--onlyvisible", "--name", pattern)
        return proc.stdout.split()

    def title(self, window: str) -> str:
        return self.run("xdotool", "getwindowname", window).stdout.strip()

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        info = self.run("xwininfo", "-id", window).stdout
        value = {k: int(re.search(rf"{k}:\s+(-?\d+)", info).group(1))  # type: ignore[union-attr]
                 for k in ("Absolute upper-left X", "Absolute upper-left Y", "Width",
                           "Height")}
        return (value["Absolute upper-left X"], value["Absolute upper-left Y"],
                value["Width"], value["Height"])

    def pixel(self, shot: Path, x: int, y: int) -> tuple[int, int, int]:
        out = subprocess.run(["convert", str(shot), "-crop", f"1x1+{x}+{y}", "txt:-"],
                             capture_output=True, text=True, check=True).stdout
        found = re.search(r"\((\d+),(\d+),(\d+)", out.splitlines()[-1])
        assert found, out
        return int(found.group(1)), int(found.group(2)), int(found.group(3))

    def close(self) -> None:
        for proc in (self.proc, self.sound):
            proc.terminate()
            proc.wait(timeout=10)


class Lab:
    def __init__(self, root: Path, desktop: Desktop) -> None:
        self.root = lab_tree(root)
        self.desktop = desktop
        self.plan = ""  # make plan before the first apply

    def make(self, *args: str, rc: int | None = 0) -> str:
        code, out = lab_make(self.root, *args, timeout=600, DISPLAY=self.desktop.display,
                             XDG_RUNTIME_DIR=str(self.desktop.runtime))
        if rc is not None:
            assert code == rc, f"make {' '.join(args)} exited {code}, want {rc}:\n{out}"
        return out

    @staticmethod
    def exec(machine: str, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["incus", "exec", "--project", machine.split("-")[0], machine,
                               "--", "sh", "-c", script], capture_output=True, text=True,
                              check=False, timeout=60)


def devices(machine: str) -> dict[str, Any]:
    data = incus_query(f"/1.0/instances/{machine}?project={machine.split('-')[0]}")
    return dict(data.get("devices") or {})


def ensure_gui_image() -> None:
    """The gui image, built when missing (about a minute, kept like the base image)."""
    if subprocess.run(["incus", "image", "info", GUI_IMAGE], capture_output=True,
                      check=False).returncode != 0:
        subprocess.run(["bash", str(REPO / "scripts" / "build-image-gui.sh"),
                        "anklume/debian-12", GUI_IMAGE], check=True, timeout=900)


def forget_sessions() -> None:
    """The host side of our sessions: clients ended, files removed."""
    for pidfile in gui_xpra.HOST_DIR.glob(f"{PREFIX}*.client"):
        with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
            os.kill(int(json.loads(pidfile.read_text())["pid"]), 15)
    for path in gui_xpra.HOST_DIR.glob(f"{PREFIX}*"):
        path.unlink(missing_ok=True)


def record(kind: str, seconds: float) -> None:
    TIMINGS.setdefault(kind, []).append(round(seconds, 2))
    print(f"gui timing: {kind} {seconds:.2f} s")


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tools()
    ensure_gui_image()
    cleanup(PREFIX, TABLE)
    forget_sessions()
    desktop = Desktop(tmp_path_factory.mktemp("t29desk"))
    lab = Lab(tmp_path_factory.mktemp("t29gui"), desktop)
    try:
        sync_lab(lab.root, description(), TABLE)
        lab.plan = lab.make("plan")
        lab.make("apply")
        yield lab
    finally:
        for machine in MACHINES:
            lab_make(lab.root, "gui-stop", f"I={machine}", timeout=120)
        forget_sessions()
        cleanup(PREFIX, TABLE)
        desktop.close()
        if TIMINGS:
            logs = REPO / "logs"
            logs.mkdir(exist_ok=True)
            (logs / "gui-timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")


def start(lab: Lab, machine: str, app: str, title: str) -> tuple[str, float, float]:
    """make gui; (the window, seconds until make returned, until the window was mapped)."""
    began = time.monotonic()
    out = lab.make("gui", f"I={machine}", f"APP={app}")
    returned = time.monotonic() - began
    domain = machine.split("-")[0]
    pattern = "^" + re.escape(f"[{domain}] {title}") + "$"
    window = wait_for(lambda: lab.desktop.windows(pattern), timeout=60)[0]
    mapped = time.monotonic() - began
    assert f"marked [{domain}]" in out, out
    return window, returned, mapped


def test_the_window_opens_on_the_desktop_marked_by_the_host(lab: Lab) -> None:
    """The app titles itself as another domain's: the host's prefix and border still say
    t29gb, in blue (round(0.6 x #3465a4) per channel, xpra 3.1's border alpha)."""
    window, returned, mapped = start(lab, "t29gb-app", 'xterm -T "[t29gc] fake"',
                                     "[t29gc] fake")
    record("cold make gui returned", returned)
    record("cold window mapped", mapped)
    assert lab.desktop.title(window) == "[t29gb] [t29gc] fake"
    lab.desktop.run("xdotool", "windowraise", window)
    time.sleep(1)  # the first paint
    x, y, w, h = lab.desktop.geometry(window)
    shot = lab.root / "shot.png"
    # docs/images/gui-desktop.png is this screenshot, cropped to the window (convert shot.png
    # -crop 524x356+0+0 +repage -strip): take it again from a run when the look changes.
    lab.desktop.run("import", "-window", "root", str(shot))
    want = gui_xpra.border_pixel(HEX["blue"])
    for px, py in ((x + 1, y + h // 2), (x + w // 2, y + 1), (x + w - 2, y + h // 2),
                   (x + w // 2, y + h - 2)):
        got = lab.desktop.pixel(shot, px, py)
        assert all(abs(a - b) <= 2 for a, b in zip(got, want, strict=True)), (px, py, got, want)
    inside = lab.desktop.pixel(shot, x + w // 2, y + h // 2)
    assert inside != want  # the app's own pixels (xterm's white) inside the border


def test_the_app_outlives_make_and_a_second_one_comes_at_once(lab: Lab) -> None:
    assert lab.desktop.windows(r"^\[t29gb\] \[t29gc\] fake$")  # still there after make ended
    for n in range(3):
        _, _, mapped = start(lab, "t29gb-app", f"xterm -T warm{n}", f"warm{n}")
        record("warm window mapped", mapped)
    out = lab.make("gui", "I=t29gb-app", "APP=xterm -T warm-again")
    assert "session already running" in out, out


def test_the_machine_cannot_reach_the_host_display(lab: Lab) -> None:
    n = lab.desktop.number
    proc = lab.exec("t29gb-app", "ls -A /tmp/.X11-unix; ls -d /var/lib/anklume 2>&1; "
                    f"for d in :{n} :0 {BASE}.1.254:{n}; do DISPLAY=$d timeout 5 xdpyinfo "
                    ">/dev/null 2>&1 && echo reached $d || echo refused $d; done; env")
    lines = proc.stdout.splitlines()
    assert lines[0] == "X100", proc.stdout  # its own display only
    assert "No such file or directory" in lines[1], proc.stdout
    assert [ln for ln in lines if ln.startswith(("reached", "refused"))] == [
        f"refused :{n}", "refused :0", f"refused {BASE}.1.254:{n}"], proc.stdout
    assert not any(ln.startswith(("DISPLAY=", "WAYLAND_DISPLAY=", "XAUTHORITY="))
                   for ln in lines), proc.stdout


def test_two_gui_machines_do_not_see_each_others_windows(lab: Lab) -> None:
    start(lab, "t29gc-app", "xterm -T c-own", "c-own")
    assert lab.desktop.windows(r"^\[t29gb\] ") and lab.desktop.windows(r"^\[t29gc\] c-own$")
    seen_by_c = lab.exec("t29gc-app", "DISPLAY=:100 xdotool search --name . getwindowname "
                         "%@ 2>/dev/null")
    seen_by_b = lab.exec("t29gb-app", "DISPLAY=:100 xdotool search --name . getwindowname "
                         "%@ 2>/dev/null")
    assert "c-own" in seen_by_c.stdout and "fake" not in seen_by_c.stdout, seen_by_c.stdout
    assert "fake" in seen_by_b.stdout and "c-own" not in seen_by_b.stdout, seen_by_b.stdout
    # nor over the network: its X server and xpra listen on no TCP port
    proc = lab.exec("t29gc-app", f"DISPLAY={BASE}.1.10:100 timeout 5 xdpyinfo >/dev/null "
                    "2>&1 && echo reached || echo refused")
    assert proc.stdout.strip() == "refused"
    ports = lab.exec("t29gb-app", "ss -Hlnt; ss -Hlnu | grep -v ':68 '")
    assert ports.stdout.strip() == "", ports.stdout


def test_nothing_crosses_through_the_clipboard(lab: Lab) -> None:
    host = subprocess.Popen(["xclip", "-quiet", "-selection", "clipboard", "-i"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "DISPLAY": lab.desktop.display})
    try:
        assert host.stdin is not None
        host.stdin.write("t29-host-secret")
        host.stdin.close()
        wait_for(lambda: lab.desktop.run("xclip", "-o", "-selection", "clipboard").stdout
                 == "t29-host-secret", timeout=10)
        time.sleep(1)
        inside = lab.exec("t29gb-app", "for s in clipboard primary; do DISPLAY=:100 timeout "
                          "3 xclip -o -selection $s 2>/dev/null; done; true")
        assert "t29-host-secret" not in inside.stdout
        lab.exec("t29gb-app", "printf t29-machine-secret | DISPLAY=:100 setsid -f timeout 10 "
                 "xclip -quiet -selection clipboard -i >/dev/null 2>&1")
        time.sleep(1)
        back = lab.desktop.run("xclip", "-o", "-selection", "clipboard").stdout
        assert back == "t29-host-secret", back
    finally:
        host.kill()
        host.wait(timeout=10)


def set_clipboard(machine: str, text: str, target: str = "UTF8_STRING") -> None:
    """TEXT in MACHINE's clipboard, offered as TARGET, by an xclip that keeps owning it."""
    proc = subprocess.run(
        ["incus", "exec", "--project", machine.split("-")[0], machine, "--", "sh", "-c",
         'f=$(mktemp); cat >"$f"; DISPLAY=:100 setsid -w xclip -selection clipboard '
         f'-t {target} -i "$f" </dev/null >/dev/null 2>&1; rc=$?; rm -f "$f"; exit $rc'],
        input=text, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


def clipboard(machine: str) -> str:
    return Lab.exec(machine, "DISPLAY=:100 timeout 5 xclip -o -selection clipboard").stdout


def refused_clip(lab: Lab, source: str, target: str) -> str:
    """The one line of a make clip that must be refused (exit 2)."""
    out = lab.make("clip", f"FROM={source}", f"TO={target}", rc=2)
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("make: ***")]
    assert len(lines) == 1, out
    return lines[0]


def test_clip_copies_blue_text_into_red_and_prints_no_text(lab: Lab) -> None:
    text = "t29 clip: naïve café, line one\nline two\n"
    set_clipboard("t29gb-app", text)
    set_clipboard("t29gc-app", "t29-red-before")
    began = time.monotonic()
    out = lab.make("clip", "FROM=t29gb-app", "TO=t29gc-app")
    record("make clip", time.monotonic() - began)
    data = text.encode()
    assert (f"clip: t29gb-app -> t29gc-app: {len(data)} bytes of text, sha256 "
            f"{hashlib.sha256(data).hexdigest()}") in out, out
    assert "naïve" not in out and "line two" not in out, out
    assert clipboard("t29gc-app") == text
    assert clipboard("t29gb-app") == text  # the source keeps its own


def test_clip_red_to_blue_is_refused_and_blue_keeps_its_clipboard(lab: Lab) -> None:
    set_clipboard("t29gb-app", "t29-blue-own")
    set_clipboard("t29gc-app", "t29-red-secret")
    line = refused_clip(lab, "t29gc-app", "t29gb-app")
    assert line.startswith("make clip: no clipboard_policies entry allows clips from "
                           "t29gc-app (domain t29gc) to t29gb-app (domain t29gb)"), line
    assert "clipboard_policies in infra.yml" in line, line
    assert clipboard("t29gb-app") == "t29-blue-own"


def test_clip_refuses_what_is_not_text_or_too_big(lab: Lab) -> None:
    set_clipboard("t29gc-app", "t29-red-kept")
    set_clipboard("t29gb-app", "\x89PNG not really", target="image/png")
    line = refused_clip(lab, "t29gb-app", "t29gc-app")
    assert line.startswith("make clip: the clipboard of t29gb-app holds no text (it offers "
                           "image/png)"), line
    set_clipboard("t29gb-app", "x" * (clip.LIMIT + 1))
    line = refused_clip(lab, "t29gb-app", "t29gc-app")
    assert f"holds more than {clip.LIMIT} bytes" in line, line
    assert clipboard("t29gc-app") == "t29-red-kept"


def under_a_terminal(lab: Lab, *args: str) -> str:
    """make ARGS under a pty (`script`), as typed in a terminal: what it printed."""
    line = " ".join(["make", "--no-print-directory", "-o", ".venv/.installed", *args])
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.run(["script", "-qec", line, "/dev/null"], cwd=lab.root, input="exit\n",
                          capture_output=True, text=True, check=False, timeout=120,
                          env={**env, "TERM": "xterm", "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_status_and_the_shell_prompt_show_the_domain_colour(lab: Lab) -> None:
    """On a terminal, make status colours each domain's name and make shell's prompt starts
    with [domain] in the same colour (issue 29); piped, status stays plain."""
    label = colors.ansi(HEX["blue"], "t29gb")
    out = under_a_terminal(lab, "status")
    assert any(ln.startswith(label) and "t29gb-app" in ln for ln in out.splitlines()), out
    assert colors.ansi(HEX["red"], "t29gc") in out, out
    assert "\x1b" not in lab.make("status")
    out = under_a_terminal(lab, "shell", "I=t29gb-app")
    mark = f"\x1b[{colors.ansi_codes(HEX['blue'])}m[t29gb]\x1b[0m root@t29gb-app"
    assert mark in out, repr(out)


def test_apply_keeps_a_running_session(lab: Lab) -> None:
    """The session's proxy device is not declared: plan shows no change for it, and the
    windows stay."""
    assert "anklume-gui" in devices("t29gb-app")
    out = lab.make("plan")
    last = [ln for ln in out.splitlines() if ln.startswith("plan: ")][-1]
    assert last.startswith("plan: 0 to create, 0 to change, 0 to remove"), out
    assert lab.desktop.windows(r"^\[t29gb\] ")


def test_gui_list_then_gui_stop_leaves_nothing(lab: Lab) -> None:
    out = lab.make("gui-list")
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:] if ln.strip()}
    assert rows["t29gb-app"][1:6] == ["t29gb", HEX["blue"], "Running", "yes", "answers"], out
    assert rows["t29gb-app"][6].isdigit(), out
    pid = int(rows["t29gb-app"][6])
    began = time.monotonic()
    out = lab.make("gui-stop", "I=t29gb-app")
    record("gui-stop", time.monotonic() - began)
    assert "xpra server stopped" in out and "device removed" in out, out
    assert "anklume-gui" not in devices("t29gb-app")
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=15)
    wait_for(lambda: not lab.desktop.windows(r"^\[t29gb\] "), timeout=15)
    left = lab.exec("t29gb-app", "ps -eo comm= | grep -E 'xpra|Xvfb|xterm' || true")
    assert left.stdout.strip() == "", left.stdout
    assert not (gui_xpra.HOST_DIR / "t29gb.t29gb-app.sock").exists()
    assert lab.desktop.windows(r"^\[t29gc\] c-own$")  # the other session runs on
    out = lab.make("gui-list")
    assert re.search(r"^t29gb-app\s+t29gb\s+\S+\s+Running\s+-\s+-\s+-$", out, re.M), out


def test_the_tree_says_gui_for_both_machines(lab: Lab) -> None:
    for machine in MACHINES:
        hv = yaml.safe_load((lab.root / "host_vars" / f"{machine}.yml").read_text())
        assert hv["instance_gui"] is True and hv["instance_os_image"] == GUI_IMAGE
        sound = SOUND.get(machine, {})
        assert hv["instance_audio"] is sound.get("audio", False), machine
        assert hv["instance_microphone"] is sound.get("microphone", False), machine


def test_the_plan_names_the_image_of_each_machine_to_create(lab: Lab) -> None:
    for machine in MACHINES:
        assert f"plan: + instance {machine} (image {GUI_IMAGE})" in lab.plan, lab.plan


def sound_state(machine: str) -> dict[str, str]:
    """What the machine's running xpra server says of sound: its command line's sound
    options, whether a pulseaudio runs in the machine, and the speaker and microphone
    state `xpra info` gives for the host's client (disabled, inactive, ready, active)."""
    proc = Lab.exec(machine, "for p in $(pgrep -f 'xpra start'); do tr '\\0' ' ' "
                    "</proc/$p/cmdline; echo; done; echo pulseaudio=$(pgrep -x pulseaudio | "
                    f"wc -l); xpra info socket://{gui_xpra.SERVER_SOCKET} 2>/dev/null | "
                    "grep -E '^client[.0-9]*sound[.](speaker|microphone)[.]state='")
    state: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if " start " in line and "--speaker=" in line:
            for opt in ("pulseaudio", "speaker", "microphone"):
                found = re.search(rf"--{opt}=(\S+)", line)
                state[f"argv.{opt}"] = found.group(1) if found else ""
        elif line.startswith("pulseaudio="):
            state["pulseaudio"] = line.split("=", 1)[1]
        elif ".sound." in line:
            key, value = line.split("=", 1)
            state[key.split(".sound.")[1].removesuffix(".state")] = value
    return state


def host_streams(lab: Lab, kind: str) -> dict[str, int]:
    """The streams of KIND (sink-inputs: played; source-outputs: recorded) on the desktop's
    pulseaudio, per machine whose host client (or its sound process) holds them."""
    clients = {}
    for pidfile in gui_xpra.HOST_DIR.glob(f"{PREFIX}*.client"):
        clients[int(json.loads(pidfile.read_text())["pid"])] = pidfile.stem.split(".")[1]
    proc = subprocess.run(["pactl", "list", kind], capture_output=True, text=True, check=True,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(lab.desktop.runtime)})
    found: dict[str, int] = {}
    for pid in re.findall(r'application\.process\.id = "(\d+)"', proc.stdout):
        owner, seen = int(pid), 0
        while owner not in clients and owner > 1 and seen < 5:  # the client's sound child
            with contextlib.suppress(OSError, IndexError, ValueError):
                owner = int(Path(f"/proc/{owner}/stat").read_text().rsplit(")", 1)[1].split()[1])
            seen += 1
        name = clients.get(owner, "other")
        found[name] = found.get(name, 0) + 1
    return found


def test_sound_is_forwarded_only_where_declared(lab: Lab) -> None:
    """audio: true starts a pulseaudio in the machine and its speaker plays on the desktop's
    sound server; the desktop's microphone is recorded for it only with microphone: true;
    a plain gui machine has neither (issue 29)."""
    for machine in SOUND:
        began = time.monotonic()
        out = lab.make("gui", f"I={machine}", f"APP=xterm -T {machine}")
        record("cold make gui (audio)", time.monotonic() - began)
        assert "sound on, microphone " + ("on" if machine == "t29gc-call" else "off") in out
        wait_for(lambda m=machine: lab.desktop.windows(re.escape(m) + "$"), timeout=60)
    lab.make("gui", "I=t29gb-app", "APP=xterm -T plain")  # its session, if a test stopped it
    # xpra's states: disabled (not offered), inactive (offered, no stream), ready (the
    # microphone's pipeline waits for data), active (a stream flows).
    live = ("ready", "active")
    wanted = {"t29gb-app": (("disabled",), ("disabled",)),
              "t29gb-tune": (("active",), ("disabled",)), "t29gc-call": (("active",), live)}

    def settled(machine: str, state: dict[str, str]) -> bool:
        speaker, microphone = wanted[machine]
        return state.get("speaker") in speaker and state.get("microphone") in microphone

    states: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + 60
    for machine in wanted:  # a stream takes a few seconds to become active
        while not settled(machine, states.setdefault(machine, {})) and \
                time.monotonic() < deadline:
            states[machine] = sound_state(machine)
    assert all(settled(m, s) for m, s in states.items()), states
    print(f"gui sound states: {json.dumps(states)}")
    plain, tune, call = states["t29gb-app"], states["t29gb-tune"], states["t29gc-call"]
    assert (plain["argv.pulseaudio"], plain["argv.speaker"], plain["argv.microphone"],
            plain["pulseaudio"]) == ("no", "disabled", "disabled", "0"), plain
    assert (tune["argv.pulseaudio"], tune["argv.speaker"], tune["argv.microphone"]) == (
        "yes", "on", "disabled"), tune
    assert (call["argv.pulseaudio"], call["argv.speaker"], call["argv.microphone"]) == (
        "yes", "on", "on"), call
    assert tune["pulseaudio"] == call["pulseaudio"] == "1", (tune, call)
    # On the desktop's sound server: one played stream per audio machine, one recording
    # for the microphone machine only, none for the plain one.
    deadline = time.monotonic() + 30
    played, recorded = {}, {}
    while time.monotonic() < deadline and (len(played) < 2 or not recorded):
        played = host_streams(lab, "sink-inputs")
        recorded = host_streams(lab, "source-outputs")
    print(f"gui desktop streams: played {played}, recorded {recorded}")
    assert played == {"t29gb-tune": 1, "t29gc-call": 1}, played
    assert recorded == {"t29gc-call": 1}, recorded
    # An app of the machine reaches its pulseaudio (make gui gives it PULSE_SERVER).
    lab.make("gui", "I=t29gb-tune", "APP=sh -c 'pactl info >/tmp/t29-pactl.txt 2>&1'")
    info = wait_for(lambda: Lab.exec("t29gb-tune", "cat /tmp/t29-pactl.txt").stdout or None,
                    timeout=20)
    assert f"Server String: unix:{gui_xpra.PULSE_SOCKET}" in info, info
    assert "Default Sink: Xpra-Speaker" in info, info
