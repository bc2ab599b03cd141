"""The xpra command lines of a gui session (ADR-091): the server inside the machine, the
client on the host, and where their sockets and files are.

Everything that could carry data between the host and the machine, other than windows,
keys and pointer events, is off on both sides: clipboard, notifications, trays, bell, file
transfer, printing, URLs, audio, webcam, mDNS, dbus, xsettings, remote logging, mmap. Sound
is the one opt-in: a machine with `audio: true` gets a pulseaudio and its speaker forwarded
to the host, and the host's microphone too only with `microphone: true`.
"""

from __future__ import annotations

from pathlib import Path

# Inside the machine: its own display, and the one socket the server listens on.
SERVER_DIR = "/run/anklume-gui"
SERVER_SOCKET = f"{SERVER_DIR}/xpra.sock"
DISPLAY = ":100"
# The server's XDG_RUNTIME_DIR: xpra puts the private pulseaudio of an `audio: true` machine
# under it (without one it cannot, and its sound pipelines find no server), and the apps
# reach that pulseaudio through PULSE_SOCKET.
RUNTIME_DIR = f"{SERVER_DIR}/run"
PULSE_SOCKET = f"{RUNTIME_DIR}/xpra/pulse-{DISPLAY.lstrip(':')}/pulse/native"
# On the host: the proxy devices' sockets and each session's client pid and log. Not /run:
# a device whose listen directory is missing makes the instance's start fail, and a reboot
# empties /run (ADR-091).
HOST_DIR = Path("/var/lib/anklume/gui")
# The border the host client draws inside every window of the machine, in pixels.
BORDER = 5
# xpra 3.1 paints the border at this alpha (hard-coded), over nothing of the app: a border
# pixel is round(ALPHA * the colour), whatever the app draws (the tests check pixels).
BORDER_ALPHA = 0.6
# Environment of the apps: X11 backends, so that their windows reach the xpra display
# (xpra's own start-env, which apps started by `incus exec` do not get).
APP_ENV = {"DISPLAY": DISPLAY, "GDK_BACKEND": "x11", "QT_QPA_PLATFORM": "xcb",
           "NO_AT_BRIDGE": "1"}
# The client's PATH: the system's python3 (xpra re-executes it for its sound query; a
# pyenv shim earlier in PATH breaks it).
CLIENT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def app_env(audio: bool = False) -> dict[str, str]:
    """The environment of an app: APP_ENV, and the machine's pulseaudio with AUDIO."""
    return {**APP_ENV, "PULSE_SERVER": f"unix:{PULSE_SOCKET}"} if audio else dict(APP_ENV)


_OFF = ("--mdns=no", "--notifications=no", "--webcam=no",
        "--printing=no", "--file-transfer=no", "--open-files=no", "--open-url=no",
        "--clipboard=no", "--dbus-proxy=no")


def sound_argv(audio: bool = False, microphone: bool = False) -> list[str]:
    """The sound options of both sides. xpra's `off` still lets the other side turn a
    stream on later; `disabled` does not: what the machine does not declare is disabled."""
    return [f"--pulseaudio={'yes' if audio else 'no'}",
            f"--speaker={'on' if audio else 'disabled'}",
            f"--microphone={'on' if audio and microphone else 'disabled'}"]


def server_argv(audio: bool = False, microphone: bool = False) -> list[str]:
    """`xpra start` in the machine: display :100 (its own Xvfb), the unix socket only,
    detached, its log beside the socket; a pulseaudio of its own only with AUDIO."""
    return ["xpra", "start", DISPLAY, f"--bind={SERVER_SOCKET}", f"--socket-dirs={SERVER_DIR}",
            f"--log-dir={SERVER_DIR}", "--daemon=yes", *_OFF, *sound_argv(audio, microphone),
            "--html=off", "--systemd-run=no", "--dbus-launch=", "--dbus-control=no"]


def client_argv(socket: Path, domain: str, color: str, audio: bool = False,
                microphone: bool = False) -> list[str]:
    """`xpra attach` on the host: the domain's colour as the border and its name before
    every title, both drawn here, where the machine cannot change them. The host's own
    sound server plays the machine's speaker with AUDIO and records for it with MICROPHONE
    (no pulseaudio of the client's own: --pulseaudio is a server option)."""
    return ["xpra", "attach", f"socket://{socket}", f"--border={color},{BORDER}",
            f"--title=[{domain}] @title@", f"--session-name={domain}", *_OFF,
            *sound_argv(audio, microphone), "--tray=no", "--system-tray=no",
            "--bell=no", "--xsettings=no", "--global-menus=no", "--remote-logging=no",
            "--mmap=no", "--opengl=no"]


def stop_argv() -> list[str]:
    """`xpra stop` in the machine: the server, its Xvfb and so the apps on it end."""
    return ["xpra", "stop", f"socket://{SERVER_SOCKET}"]


def probe_argv(socket: Path) -> list[str]:
    """`xpra id` through the host socket: succeeds once the server answers there."""
    return ["xpra", "id", f"socket://{socket}"]


def session(project: str, name: str, root: Path = HOST_DIR) -> Path:
    """The host files of a machine's session, without suffix (.sock, .client, .log)."""
    return root / f"{project}.{name}"


def border_pixel(color: str) -> tuple[int, int, int]:
    """The RGB a border pixel of COLOR (#rrggbb) shows on the host's screen."""
    value = color.lstrip("#")
    red, green, blue = (round(BORDER_ALPHA * int(value[i:i + 2], 16)) for i in (0, 2, 4))
    return red, green, blue
