"""The warm-up callback (plugins/callback/anklume_warm.py, ADR-076): what a task's worker
would load again, the controller has loaded before the first task forks its worker.

A real ansible-playbook run on localhost (connection local, no Incus) with the project's
ansible.cfg. A probe callback, given here, records at the first task's start what the
controller process holds; the same run without anklume_warm is the control, so the check
can fail. Whether it saves time is `make bench`'s to say, not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAY = """\
- name: One task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: A task whose worker inherits the controller
      ansible.builtin.debug: {msg: done}
"""
PROBE = '''\
import json, os, sys
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "probe"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        from ansible._internal._templating._jinja_bits import AnsibleEnvironment
        prefix = "ansible_collections.anklume.incus.plugins."
        with open(os.environ["PROBE_OUT"], "w") as out:
            json.dump({"modules": sorted(m[len(prefix):] for m in sys.modules
                                         if m.startswith(prefix)),
                       "lexers": len(AnsibleEnvironment._lexer_cache)}, out)
'''


def held_at_first_task(tmp_path: Path, callbacks: str) -> tuple[dict[str, object], str]:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "cb").mkdir(exist_ok=True)
    (tmp_path / "cb" / "probe.py").write_text(PROBE)
    out = tmp_path / "probe.json"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_CALLBACK_PLUGINS": str(tmp_path / "cb"),
           "ANSIBLE_CALLBACKS_ENABLED": callbacks, "PROBE_OUT": str(out),
           "ANSIBLE_INVENTORY": "localhost,", "ANSIBLE_NOCOLOR": "1",
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([str(PLAYBOOK), "play.yml"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_the_controller_holds_our_plugins_and_the_lexer_before_the_first_fork(
        tmp_path: Path) -> None:
    cold, cold_out = held_at_first_task(tmp_path, "anklume.incus.anklume_plan,probe")
    warm, warm_out = held_at_first_task(
        tmp_path, "anklume.incus.anklume_plan,anklume.incus.anklume_warm,probe")
    # The control: without the warm-up, nothing of ours and no lexer before the first task.
    assert "modules.incus_instance" not in cold["modules"]
    assert cold["lexers"] == 0
    # With it: every module the in-process action imports, our connection and filters.
    for name in ("modules.incus_instance", "modules.incus_network", "modules.state_probe",
                 "connection.anklume_incus", "action.inprocess", "filter.desired_state",
                 "filter.ruleset"):
        assert name in warm["modules"], name
    assert warm["lexers"] >= 1
    # And it prints nothing: the run's output is the control's.
    assert warm_out == cold_out


def test_the_project_enables_the_warm_up() -> None:
    cfg = (REPO / "ansible.cfg").read_text()
    enabled = next(line for line in cfg.splitlines() if line.startswith("callbacks_enabled"))
    assert "anklume.incus.anklume_warm" in enabled
