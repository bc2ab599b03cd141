"""gui machines (ADR-091): `gui: true` in infra.yml, checked by the real generator, the
xpra command lines the host and the machine run, and `make gui`'s bad input, each refused
in one line, exit 2, before Incus is asked anything. The sessions themselves run on the
real Incus with an Xvfb as the desktop in tests/integration/test_gui.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from anklume import validate, yamlload
from anklume.errors import InputError
from anklume.ops import gui_xpra, main
from tests.incus_helpers import guard_incus
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

INFRA = """\
project_name: t29gu
global: {base_subnet: "10.100"}
domains:
  work:
    subnet_id: 2
    color: blue
    machines:
      work-desk: {ip: "10.100.2.10", gui: true}
      work-box: {ip: "10.100.2.11"}
      work-own: {ip: "10.100.2.12", gui: true, os_image: "my/desktop"}
"""


def problems(text: str) -> list[str]:
    try:
        validate.validate(yamlload.load_text(text, "infra.yml"))
    except InputError as exc:
        return [f"{p.path}: {p.what}" for p in exc.problems]
    return []


def test_a_gui_machine_renders_its_flag_and_takes_the_gui_image(tmp_path: Path) -> None:
    assert sync(tmp_path, INFRA).code == 0
    hv = {m: yaml.safe_load((tmp_path / "host_vars" / f"{m}.yml").read_text())
          for m in ("work-desk", "work-box", "work-own")}
    assert hv["work-desk"]["instance_gui"] is True
    assert hv["work-desk"]["instance_os_image"] == "anklume/debian-12-gui"
    assert hv["work-box"]["instance_gui"] is False
    assert hv["work-box"]["instance_os_image"] == "anklume/debian-12"
    assert hv["work-own"]["instance_os_image"] == "my/desktop"  # declared: kept


@pytest.mark.parametrize(("change", "want"), [
    (('gui: true, os_image: "my/desktop"', 'gui: true, type: vm, os_image: "my/desktop", '
      'config: {limits.memory: 2GiB, limits.cpu: "1"}'),
     "domains.work.machines.work-own.gui: gui apps are shown from lxc machines only"),
    (("gui: true}", "gui: yes please}"), "domains.work.machines.work-desk.gui: "),
    (('work-box: {ip: "10.100.2.11"}',
      'work-box: {ip: "10.100.2.11", devices: {anklume-gui: {type: proxy}}}'),
     "domains.work.machines.work-box.devices.anklume-gui: device name anklume-gui is "
     "make gui's"),
])
def test_a_bad_gui_declaration_is_named(change: tuple[str, str], want: str) -> None:
    text = INFRA.replace(*change, 1)
    assert text != INFRA
    found = problems(text)
    assert any(p.startswith(want) for p in found), found


AUDIO_INFRA = INFRA.replace('work-box: {ip: "10.100.2.11"}', 'work-box: {ip: "10.100.2.11"}\n'
                                '      work-tune: {ip: "10.100.2.13", gui: true, audio: true}\n'
                                '      work-call: {ip: "10.100.2.14", gui: true, audio: true, '
                                'microphone: true}')


def test_audio_and_microphone_render_into_the_host_vars(tmp_path: Path) -> None:
    assert sync(tmp_path, AUDIO_INFRA).code == 0
    hv = {m: yaml.safe_load((tmp_path / "host_vars" / f"{m}.yml").read_text())
          for m in ("work-desk", "work-tune", "work-call")}
    assert [(hv[m]["instance_audio"], hv[m]["instance_microphone"])
            for m in ("work-desk", "work-tune", "work-call")] == [
        (False, False), (True, False), (True, True)]


@pytest.mark.parametrize(("change", "want"), [
    (('work-box: {ip: "10.100.2.11"}', 'work-box: {ip: "10.100.2.11", audio: true}'),
     "infra.yml:9: domains.work.machines.work-box.audio: audio is forwarded by a gui "
     "session: the machine does not declare gui: true; add `gui: true`, or remove "
     "`audio: true`"),
    (("gui: true}", "gui: true, microphone: true}"),
     "infra.yml:8: domains.work.machines.work-desk.microphone: the microphone goes with the "
     "sound: the machine does not declare audio: true; add `audio: true`, or remove "
     "`microphone: true`"),
    (('work-box: {ip: "10.100.2.11"}', 'work-box: {ip: "10.100.2.11", microphone: true}'),
     "infra.yml:9: domains.work.machines.work-box.microphone: the microphone goes with the "
     "sound"),
    (("gui: true}", "gui: true, audio: loud}"),
     "infra.yml:8: domains.work.machines.work-desk.audio: "),
])
def test_a_bad_audio_declaration_is_one_line_with_its_line(change: tuple[str, str],
                                                           want: str) -> None:
    text = INFRA.replace(*change, 1)
    assert text != INFRA
    try:
        validate.validate(yamlload.load_text(text, "infra.yml"))
    except InputError as exc:
        lines = [p.render() for p in exc.problems]
    else:
        lines = []
    assert len(lines) == 1 and lines[0].startswith(want), lines


def test_a_bad_audio_declaration_stops_make_sync_with_exit_2(tmp_path: Path) -> None:
    done = sync(tmp_path, INFRA.replace("gui: true}", "gui: true, microphone: true}", 1))
    assert done.code == 2
    assert not (tmp_path / "host_vars").exists()


@pytest.mark.parametrize(("audio", "microphone", "want"), [
    (False, False, ["--pulseaudio=no", "--speaker=disabled", "--microphone=disabled"]),
    (True, False, ["--pulseaudio=yes", "--speaker=on", "--microphone=disabled"]),
    (True, True, ["--pulseaudio=yes", "--speaker=on", "--microphone=on"]),
    (False, True, ["--pulseaudio=no", "--speaker=disabled", "--microphone=disabled"]),
])
def test_sound_is_disabled_on_both_sides_unless_declared(audio: bool, microphone: bool,
                                                         want: list[str]) -> None:
    server = gui_xpra.server_argv(audio, microphone)
    client = gui_xpra.client_argv(Path("/s/p.m.sock"), "work", "#3465a4", audio, microphone)
    for argv in (server, client):
        sound = [a for a in argv if a.startswith(("--pulseaudio=", "--speaker=",
                                                  "--microphone="))]
        assert sound == want, argv


def test_the_host_client_draws_the_mark_and_shares_nothing() -> None:
    argv = gui_xpra.client_argv(Path("/s/p.m.sock"), "work", "#3465a4")
    assert argv[:3] == ["xpra", "attach", "socket:///s/p.m.sock"]
    assert "--border=#3465a4,5" in argv
    assert "--title=[work] @title@" in argv
    for off in ("--clipboard=no", "--notifications=no", "--file-transfer=no",
                "--printing=no", "--open-url=no", "--remote-logging=no", "--mmap=no",
                "--system-tray=no", "--bell=no", "--xsettings=no"):
        assert off in argv, off


def test_the_server_listens_on_its_unix_socket_only() -> None:
    argv = gui_xpra.server_argv()
    assert argv[:3] == ["xpra", "start", ":100"]
    assert "--bind=/run/anklume-gui/xpra.sock" in argv
    assert "--clipboard=no" in argv and "--html=off" in argv and "--mdns=no" in argv
    assert not any(a.startswith(("--bind-tcp", "--bind-ws", "--bind-ssl")) for a in argv)


def test_the_border_pixel_is_six_tenths_of_the_colour() -> None:
    assert gui_xpra.border_pixel("#1e66f5") == (18, 61, 147)  # measured on Xvfb (ADR-091)
    assert gui_xpra.border_pixel("#000000") == (0, 0, 0)


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert sync(tmp_path, INFRA).code == 0
    monkeypatch.setenv("PATH", f"{guard_incus(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("target", "values", "line"), [
    ("gui", {"I": "work-box", "APP": "xterm"},
     "make gui: machine work-box does not declare gui: true; add `gui: true` to "
     "domains.work.machines.work-box in infra.yml"),
    ("gui", {"I": "work-dsk", "APP": "xterm"},
     "make gui: I=work-dsk is no declared instance; did you mean work-desk?"),
    ("gui", {"I": "work-desk,work-own", "APP": "xterm"},
     "make gui: I=work-desk,work-own names 2 instances: make gui takes one"),
    ("gui", {"I": "work-desk"}, "make gui: APP= is required"),
    ("gui", {"APP": "xterm"}, "make gui: I= is required"),
    ("gui", {"I": "work-desk", "APP": "xterm", "CMD": "x"}, "make gui: CMD= is not read here"),
    ("gui-stop", {"I": "work-box"}, "make gui-stop: machine work-box does not declare gui"),
    ("gui-stop", {}, "make gui-stop: I= is required"),
])
def test_a_bad_gui_is_one_line_exit_2_and_asks_incus_nothing(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        target: str, values: dict[str, str], line: str) -> None:
    flags = " ".join(f"{k}={v}" for k, v in values.items())
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main([target])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert not (tree / "calls").exists(), "Incus was asked"


def test_no_display_is_refused_before_incus_is_asked(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("MAKEFLAGS", " -- I=work-desk APP=xterm")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main(["gui"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "DISPLAY is not set" in err[0] or "xpra is not installed" in err[0], err
    assert not (tree / "calls").exists(), "Incus was asked"


# make clip (ADR-091): clipboard_policies checked like file_policies, and make clip's bad
# input refused in one line before Incus is asked anything.
CLIP_INFRA = INFRA + """\
  play:
    subnet_id: 3
    machines:
      play-desk: {ip: "10.100.3.10", gui: true}
clipboard_policies:
  - {from: work, to: play-desk, description: "links to the browser"}
"""


def test_clipboard_policies_render_like_file_policies(tmp_path: Path) -> None:
    assert sync(tmp_path, CLIP_INFRA).code == 0
    all_vars = yaml.safe_load((tmp_path / "group_vars" / "all.yml").read_text())
    assert all_vars["anklume_clipboard_policies"] == [
        {"from": "work", "from_kind": "domain", "to": "play-desk", "to_kind": "machine",
         "description": "links to the browser"}]
    assert all_vars["anklume_file_policies"] == []  # a clip policy allows no copy


@pytest.mark.parametrize(("change", "want"), [
    (("to: play-desk,", "to: play-dsk,"), "clipboard_policies[0].to: 'play-dsk' is neither a "
     "domain nor a machine; did you mean 'play-desk'?"),
    (('description: "links to the browser"', "ports: [1]"),
     "clipboard_policies[0].ports: unknown key 'ports'"),
    (("to: play-desk, ", ""), "clipboard_policies[0]: missing required key 'to'"),
])
def test_a_bad_clipboard_policy_is_one_line_with_its_line(change: tuple[str, str],
                                                          want: str) -> None:
    text = CLIP_INFRA.replace(*change, 1)
    assert text != CLIP_INFRA
    try:
        validate.validate(yamlload.load_text(text, "infra.yml"))
    except InputError as exc:
        lines = [p.render() for p in exc.problems]
    else:
        lines = []
    assert len(lines) == 1 and lines[0].startswith("infra.yml:16: " + want), lines


@pytest.fixture()
def clip_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert sync(tmp_path, CLIP_INFRA).code == 0
    monkeypatch.setenv("PATH", f"{guard_incus(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("values", "line"), [
    ({"FROM": "play-desk", "TO": "work-desk"},
     "make clip: no clipboard_policies entry allows clips from play-desk (domain play) to "
     "work-desk (domain work); add `- {from: play, to: work}` (or the machines) to "
     "clipboard_policies in infra.yml, then make sync"),
    ({"FROM": "work-box", "TO": "play-desk"},
     "make clip: FROM: machine work-box does not declare gui: true"),
    ({"FROM": "work-desk", "TO": "play-dsk"},
     "make clip: TO: 'play-dsk' is no instance of this tree; did you mean 'play-desk'?"),
    ({"FROM": "work-desk", "TO": "work-desk"},
     "make clip: FROM and TO both name work-desk: a clip to itself"),
    ({"FROM": "work-desk"}, "make clip: TO= is required"),
    ({"TO": "work-desk"}, "make clip: FROM= is required"),
    ({"FROM": "work-desk", "TO": "play-desk", "I": "x"}, "make clip: I= is not read here"),
])
def test_a_bad_clip_is_one_line_exit_2_and_asks_incus_nothing(
        clip_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        values: dict[str, str], line: str) -> None:
    flags = " ".join(f"{k}={v}" for k, v in values.items())
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main(["clip"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert not (clip_tree / "calls").exists(), "Incus was asked"
