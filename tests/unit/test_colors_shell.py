"""The domain colour in a terminal (ADR-090, issue 29): `make status` colours each domain's
name, `make shell`'s prompt starts with `[domain]` in it. The escapes, when they are used
(a terminal, NO_COLOR unset), and what bash does with the prompt's mark."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from anklume import colors
from anklume.ops import verbs
from tests.unit.gen_support import VALID, sync

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("color", "want"), [
    ("blue", "\x1b[48;2;52;101;164;38;2;255;255;255mpro\x1b[0m"),   # white on dark
    ("yellow", "\x1b[48;2;237;212;0;38;2;0;0;0mpro\x1b[0m"),        # black on light
    ("black", "\x1b[48;2;0;0;0;38;2;255;255;255mpro\x1b[0m"),       # shows on a dark terminal
    ("#1E66F5", "\x1b[48;2;30;102;245;38;2;255;255;255mpro\x1b[0m"),
])
def test_a_domain_label_is_a_24_bit_escape(color: str, want: str) -> None:
    assert colors.ansi(color, "pro") == want


@pytest.mark.parametrize(("tty", "env", "want"), [
    (True, {}, True),
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
    (True, {"TERM": "dumb"}, False),
    (False, {}, False),  # piped or captured: plain text
])
def test_colour_only_on_a_terminal_without_no_color(tty: bool, env: dict[str, str],
                                                    want: bool) -> None:
    assert colors.wanted(tty, env) is want


def test_the_prompt_mark_is_plain_or_coloured_between_bash_brackets() -> None:
    assert colors.prompt("pro", None) == "[pro] "
    assert colors.prompt("pro", "#cc0000") == (
        "\\[\\e[48;2;204;0;0;38;2;255;255;255m\\][pro]\\[\\e[0m\\] ")


def _bash(script: str, mark: str) -> str:
    env = {"PATH": os.environ["PATH"], "ANKLUME_PS1": mark,
           "PROMPT_COMMAND": verbs.PROMPT_COMMAND}
    return subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env,
                          capture_output=True, text=True, check=True, timeout=30).stdout


def test_prompt_command_puts_the_mark_before_the_profiles_prompt_once() -> None:
    mark = colors.prompt("pro", "blue")
    out = _bash(r"PS1='\u@\h:\w\$ '; " + 'eval "$PROMPT_COMMAND"; eval "$PROMPT_COMMAND"; '
                'printf %s "$PS1"', mark)  # the profile's prompt, then two prompts
    assert out == mark + r"\u@\h:\w\$ "


@pytest.mark.skipif(shutil.which("script") is None, reason="script (util-linux) missing")
def test_an_interactive_bash_under_a_pty_shows_the_coloured_mark() -> None:
    """What `make shell` starts, on this host: an interactive bash on a terminal."""
    mark = colors.prompt("pro", "blue")
    env = {"PATH": os.environ["PATH"], "ANKLUME_PS1": mark, "PS1": "$ ", "TERM": "xterm",
           "PROMPT_COMMAND": verbs.PROMPT_COMMAND, "HOME": "/nonexistent"}
    proc = subprocess.run(["script", "-qec", "bash --norc --noprofile -i", "/dev/null"],
                          input="exit\n", env=env, capture_output=True, text=True,
                          check=False, timeout=30)
    assert "\x1b[48;2;52;101;164;38;2;255;255;255m[pro]\x1b[0m $ " in proc.stdout, (
        repr(proc.stdout))


class FakeClient:
    def __init__(self, remote: str) -> None:
        self.remote = remote

    def get(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return [{"project": "pro", "name": "pro-dev", "status": "Running", "type": "container",
                 "state": {"network": {}}}]


def _status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            tty: bool) -> str:
    assert sync(tmp_path, VALID).code == 0
    spec = importlib.util.spec_from_file_location("anklume_status", REPO / "scripts" /
                                                  "status.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "IncusClient", FakeClient)
    monkeypatch.setattr(colors, "wanted", lambda is_tty, env: tty)
    assert module.main(["status.py", str(tmp_path)]) == 0
    return str(capsys.readouterr().out)


def test_status_colours_each_domain_name_on_a_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = _status(tmp_path, monkeypatch, capsys, tty=True)
    lines = out.splitlines()
    assert lines[0].startswith("DOMAIN ")  # the header stays plain
    pro = next(ln for ln in lines if "pro-dev" in ln)
    assert pro.startswith(colors.ansi("blue", "pro") + "     pro-dev"), repr(pro)
    admin = next(ln for ln in lines if "admin-ansible" in ln)
    assert admin.startswith(colors.ansi("black", "admin") + "   admin-ansible"), repr(admin)


def test_status_piped_is_the_plain_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = _status(tmp_path, monkeypatch, capsys, tty=False)
    assert "\x1b" not in out
    assert any(ln.startswith("pro     pro-dev") for ln in out.splitlines()), out
