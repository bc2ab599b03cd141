"""An `incus exec` whose answer is lost: reproduced on purpose, handled by anklume_incus.

Under load, `incus exec` now and then returns exit 0 with its output missing (measured
here: 7 of 500 short execs while containers were being created). To make that happen on
demand, a wrapper around the real `incus` client, first on PATH, lets the first module run
(the pipelined `python3` exec) really run in a real container and then throws its answer
away: the very failure mode, deterministic. The upstream connection then fails on the
empty answer; anklume_incus reads the answer back from the instance, and the command,
which appends a line to a file, has run exactly once.

The provision check asks the local Incus over its socket, its probe's output recorded by
Incus (ADR-099): no `incus exec` there to lose an answer. A remote still goes through the
client, so the lossy probes are asked of remote t17-self: this very daemon named as a
remote (unix://), which makes the check take the client's path.

Own lab: none (one plain container t17-lost in the default project, launched with incus, and
remote t17-self; the tests run ansible-playbook directly through a lossy incus shim and need
no AnKLuMe tree).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.incus_helpers import REPO, ansible_env, run

NAME = "t17-lost"
REMOTE = "t17-self"
RUNS = "/root/t17-runs"
SHIM = """#!/bin/bash
# Drop the answer of the first module run (an exec whose command runs python3), once.
if [[ " $* " == *" exec "* && "$*" == *python3* ]] && [ ! -e {state} ]; then
  touch {state}
  {real} "$@" >/dev/null
  exit 0
fi
exec {real} "$@"
"""
# Cut the input of the first module run: the exec fails (255, nothing printed) after the
# instance got none of the pipelined module, as a failing `incus exec` under load can.
CUT = """#!/bin/bash
if [[ " $* " == *" exec "* && "$*" == *python3* ]] && [ ! -e {state} ]; then
  touch {state}
  cat >/dev/null
  {real} "$@" </dev/null >/dev/null 2>&1
  exit 255
fi
exec {real} "$@"
"""
# Refuse the first module run with an error of Incus's (nothing ran), as `incus exec` can
# under load: a read-only probe is simply asked again.
REFUSED = """#!/bin/bash
if [[ " $* " == *" exec "* && "$*" == *python3* ]] && [ ! -e {state} ]; then
  touch {state}
  cat >/dev/null
  echo "Error: websocket: close 1006 (abnormal closure)" >&2
  exit 1
fi
exec {real} "$@"
"""
PLAY = f"""
- hosts: {NAME}
  gather_facts: false
  tasks:
    - name: Append one line; a re-run would append a second one
      ansible.builtin.shell: echo run >> {RUNS} && wc -l < {RUNS}
      register: appended
      changed_when: true
    - name: Show the count
      ansible.builtin.debug:
        msg: "lines={{{{ appended.stdout }}}}"
"""


def delete() -> None:
    subprocess.run(["incus", "delete", "--force", NAME], capture_output=True, check=False)


@pytest.fixture(scope="module")
def container(incus: str) -> Iterator[str]:
    delete()
    run(["incus", "launch", incus, NAME, "--quiet"])
    try:
        # Booted first: the one lost answer must be the shim's, not an early-boot hiccup.
        run(["incus", "exec", NAME, "--", "sh", "-c",
             "timeout 120 systemctl is-system-running --wait || true"])
        yield NAME
    finally:
        delete()


@pytest.fixture(scope="module")
def self_remote(container: str) -> Iterator[str]:
    """This daemon as remote t17-self, so that a check of it goes through the client."""
    gone = ["incus", "remote", "remove", REMOTE]
    subprocess.run(gone, capture_output=True, check=False)
    run(["incus", "remote", "add", REMOTE, "unix:///var/lib/incus/unix.socket"])
    try:
        yield REMOTE
    finally:
        subprocess.run(gone, capture_output=True, check=False)


def lossy_env(tmp: Path, shim_text: str) -> dict[str, str]:
    """Ansible's environment with the lossy `incus` of SHIM_TEXT first on PATH."""
    real = shutil.which("incus")
    assert real
    (tmp / "bin").mkdir(exist_ok=True)
    shim = tmp / "bin" / "incus"
    shim.write_text(shim_text.format(state=tmp / "dropped", real=real))
    shim.chmod(0o755)
    (tmp / "dropped").unlink(missing_ok=True)
    env = ansible_env()
    env["PATH"] = f"{tmp / 'bin'}:{env['PATH']}"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def play(tmp: Path, connection: str, project: str = "default",
         shim_text: str = SHIM) -> tuple[int, str]:
    """Run PLAY through the lossy `incus`; return rc and output."""
    env = lossy_env(tmp, shim_text)
    (tmp / "play.yml").write_text(PLAY)
    (tmp / "hosts").write_text(
        f"{NAME} ansible_connection={connection} ansible_incus_project={project} "
        "ansible_python_interpreter=/usr/bin/python3\n")
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(tmp / "hosts"), str(tmp / "play.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def lines() -> int:
    return int(run(["incus", "exec", NAME, "--", "sh", "-c", f"wc -l < {RUNS}"]).strip())


def test_upstream_connection_fails_on_the_lost_answer(container: str, tmp_path: Path) -> None:
    run(["incus", "exec", NAME, "--", "rm", "-f", RUNS])
    rc, out = play(tmp_path, "community.general.incus")
    assert rc != 0, out
    assert (tmp_path / "dropped").exists()
    assert "MODULE FAILURE" in out or "deserialization" in out, out
    assert lines() == 1  # the command ran; only its answer was lost


def test_anklume_incus_reads_the_lost_answer_back_without_rerunning(
        container: str, tmp_path: Path) -> None:
    run(["incus", "exec", NAME, "--", "rm", "-f", RUNS])
    rc, out = play(tmp_path, "anklume.incus.anklume_incus")
    assert rc == 0, out
    assert (tmp_path / "dropped").exists()
    assert f"{NAME}: incus exec lost the answer (exit 0, 0 bytes); reading it again" in out
    assert "lines=1" in out
    assert lines() == 1


def test_anklume_incus_names_a_missing_project_and_the_fix(container: str, tmp_path: Path) -> None:
    rc, out = play(tmp_path, "anklume.incus.anklume_incus", project="t17-no-such-project")
    assert rc != 0
    assert (f"{NAME} (project t17-no-such-project): its Incus project does not exist: run "
            "`make apply`, or `make sync` if infra.yml no longer declares it") in " ".join(
                out.split())
    assert "deserialization" not in out


def test_a_module_whose_input_was_cut_is_run_again_whole_and_once(
        container: str, tmp_path: Path) -> None:
    """The instance got none of the pipelined module: nothing ran, so the connection starts
    it once more (before the fix, python3 ran an empty program and Ansible failed with
    "Module result deserialization failed")."""
    run(["incus", "exec", NAME, "--", "rm", "-f", RUNS])
    rc, out = play(tmp_path, "anklume.incus.anklume_incus", shim_text=CUT)
    assert rc == 0, out
    assert (tmp_path / "dropped").exists()
    assert f"{NAME}: incus exec lost the answer (exit 255, 0 bytes)" in out
    assert "starting it once more" in out
    assert "lines=1" in out
    assert lines() == 1


# provision_check (ADR-082) runs each host's role probes in one plain `incus exec` from the
# controller: a lost or cut answer is asked again (it only reads); a probe that cannot be
# templated is that host's one-line problem.
PROBE_ROLES = {
    "t17_holds": "- name: Read /\n  anklume.incus.state_probe:\n    directories: [{path: /}]\n",
    "t17_missing": ("- name: Read a file that is not there\n  anklume.incus.state_probe:\n"
                    "    files: [{path: /root/t17-missing}]\n"),
    "t17_broken": ("- name: Read a file named by a variable nobody defines\n"
                   "  anklume.incus.state_probe:\n    files: [{path: '{{ t17_nowhere }}'}]\n"),
}
CHECK_PLAY = """
- hosts: {name}
  gather_facts: false
  tasks:
    - name: Check and probe
      anklume.incus.provision_check:
        instances: [{{host: {name}, name: {name}, project: default}}]
        remote: {remote}
        probed: "{probed}"
        record: "{booted}"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
      run_once: true
      register: checked
    - name: Keep the answer
      ansible.builtin.copy:
        content: "{{{{ checked | to_json }}}}"
        dest: answer.json
        mode: "0644"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
"""


def provision_check(tmp: Path, roles: list[str], shim_text: str, remote: str = "local",
                    probed: str = "", tasks: dict[str, str] | None = None) -> dict[str, object]:
    """CHECK_PLAY's answer, through the lossy `incus` of SHIM_TEXT (TASKS: PROBE_ROLES
    with some roles' task changed)."""
    env = lossy_env(tmp, shim_text)
    for role, task in {**PROBE_ROLES, **(tasks or {})}.items():
        (tmp / "roles" / role / "tasks").mkdir(parents=True, exist_ok=True)
        (tmp / "roles" / role / "tasks" / "main.yml").write_text("---\n" + task)
    booted = str(tmp / "booted.json") if probed else ""
    (tmp / "play.yml").write_text(CHECK_PLAY.format(name=NAME, remote=remote, probed=probed,
                                                    booted=booted))
    (tmp / "hosts").write_text(f"{NAME} instance_roles='{json.dumps(roles)}'\n")
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(tmp / "hosts"), str(tmp / "play.yml")],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer: dict[str, object] = json.loads((tmp / "answer.json").read_text())
    return answer


@pytest.mark.parametrize("shim_text", [SHIM, CUT, REFUSED], ids=["lost", "cut", "refused"])
def test_provision_check_asks_a_lost_probe_again(self_remote: str, tmp_path: Path,
                                                 shim_text: str) -> None:
    got = provision_check(tmp_path, ["t17_holds", "t17_missing", "t17_holds"], shim_text,
                          remote=self_remote)
    assert (tmp_path / "dropped").exists()  # the shim did lose the first answer
    assert got["problems"] == {}, got
    assert got["drift"] == {NAME: {"t17_holds": [],
                                   "t17_missing": ["/root/t17-missing is missing"]}}
    assert got["apply"] == {NAME: ["t17_missing", "t17_holds"]}


def test_provision_check_names_a_host_whose_probe_cannot_be_templated(
        container: str, tmp_path: Path) -> None:
    got = provision_check(tmp_path, ["t17_holds", "t17_broken"], "exec {real} \"$@\"\n")
    problem = str(got["problems"][NAME])  # type: ignore[index]
    assert problem.startswith(f"{NAME}: ") and "t17_nowhere" in problem, got
    assert NAME not in got["apply"], got  # type: ignore[operator]


def ready_check(record: Path) -> dict[str, object]:
    """incus_ready on the test's container, in this process as its action plugin runs it."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import (
        module_code,
        run_module,
    )
    params = ArgumentSpecValidator(module_code("incus_ready").ARGUMENT_SPEC).validate(
        {"instances": [{"host": NAME, "name": NAME, "project": "default"}],
         "record": str(record)}).validated_parameters
    return run_module("incus_ready", params, False, False)


def test_a_container_seen_booted_is_not_asked_again_until_it_restarts(
        container: str, tmp_path: Path) -> None:
    """ADR-082: the boot probe's answer is kept under the container's start time; a no-op
    apply right after the one that created it then asks it nothing; a restart asks again."""
    record = tmp_path / "booted.json"
    run(["incus", "restart", NAME])  # just started: within the time its boot is given
    first = ready_check(record)
    assert (first["ready"], first["probes"]) == ([NAME], 1), first
    assert list(json.loads(record.read_text())) == [f"local:default/{NAME}"]
    again = ready_check(record)
    assert (again["ready"], again["probes"]) == ([NAME], 0), again
    run(["incus", "restart", NAME])
    restarted = ready_check(record)
    assert (restarted["ready"], restarted["probes"]) == ([NAME], 1), restarted


def test_a_probe_over_the_socket_answers_as_through_the_client(
        container: str, tmp_path: Path) -> None:
    """The local check's probe runs with its output recorded by Incus (ADR-099): the same
    drift as through `incus exec`, no shim involved (nothing dropped), and Incus keeps no
    record of it afterwards."""
    roles = ["t17_holds", "t17_missing"]
    plain = "exec {real} \"$@\"\n"
    over_socket = provision_check(tmp_path, roles, plain)
    assert over_socket["drift"] == {NAME: {"t17_holds": [],
                                           "t17_missing": ["/root/t17-missing is missing"]}}
    assert over_socket["problems"] == {}, over_socket
    assert run(["incus", "query", f"/1.0/instances/{NAME}/logs/exec-output"]).strip() in (
        "[]", "null"), "the recorded output was left in the instance's logs"


def test_a_probe_started_early_answers_only_for_the_same_arguments(
        container: str, tmp_path: Path) -> None:
    """ADR-099: the second run starts the kept probe before templating and uses its answer
    (early 1: the container was seen booted by the first); a role whose probe changed is
    probed as templated now (early 0), and the record then keeps the new arguments."""
    probed = tmp_path / "probed.json"
    roles = ["t17_holds", "t17_missing"]
    plain = "exec {real} \"$@\"\n"
    first = provision_check(tmp_path, roles, plain, probed=str(probed))
    assert first["early"] == 0, first
    kept = json.loads(probed.read_text())[NAME]
    assert (kept["name"], kept["project"]) == (NAME, "default") and len(kept["params"]) == 2
    again = provision_check(tmp_path, roles, plain, probed=str(probed))
    assert again["early"] == 1, again
    assert again["drift"] == first["drift"] and again["apply"] == first["apply"]
    elsewhere = ("- name: Read another missing file\n  anklume.incus.state_probe:\n"
                 "    files: [{path: /root/t17-elsewhere}]\n")
    changed = provision_check(tmp_path, roles, plain, probed=str(probed),
                              tasks={"t17_missing": elsewhere})
    assert changed["early"] == 0, changed
    assert changed["drift"] == {NAME: {"t17_holds": [],
                                       "t17_missing": ["/root/t17-elsewhere is missing"]}}
    assert "/root/t17-elsewhere" in probed.read_text()
