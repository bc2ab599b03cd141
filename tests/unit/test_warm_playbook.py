"""ansible-playbook started before the sync and handed its arguments after it (ADR-083):
real processes of the project's virtualenv, in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anklume.ops.context import WARM_PLAYBOOK, Context
from anklume.ops.targets import TARGETS

pytestmark = pytest.mark.unit

PLAY = """\
- name: A play that writes a file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write it
      ansible.builtin.copy: {content: "{{ word }}\\n", dest: "{{ playbook_dir }}/out.txt",
                             mode: "0644"}
"""


def test_the_held_playbook_runs_with_the_arguments_given_later(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    ctx = Context(TARGETS["apply"], {}, root=tmp_path)
    ctx.warm_playbook()
    time.sleep(1.5)  # long enough for the play to have run, had it not been held
    assert not (tmp_path / "out.txt").exists()
    rc = ctx.playbook("play.yml", "-i", "localhost,", "-c", "local", "-e", "word=given")
    assert rc == 0
    assert (tmp_path / "out.txt").read_text() == "given\n"


def test_a_failing_playbook_gives_its_status(tmp_path: Path) -> None:
    ctx = Context(TARGETS["apply"], {}, root=tmp_path)
    ctx.warm_playbook()
    assert ctx.playbook("missing.yml", "-i", "localhost,") != 0


def test_a_held_playbook_never_given_arguments_ends_having_done_nothing(
        tmp_path: Path) -> None:
    """An error before the playbook (a bad infra.yml): the held process reads nothing, prints
    nothing and exits 0."""
    given, hand = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", WARM_PLAYBOOK, str(given)], cwd=tmp_path,
                            pass_fds=(given,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    os.close(given)
    time.sleep(0.2)
    os.close(hand)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, b"", b"")
    ctx = Context(TARGETS["apply"], {}, root=tmp_path)
    ctx.warm_playbook()
    held = ctx._warm
    assert held is not None
    ctx.close()
    assert held[0].wait(timeout=60) == 0
    assert list(tmp_path.iterdir()) == []
