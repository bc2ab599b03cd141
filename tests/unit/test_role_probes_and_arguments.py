"""The provision play's one probe per host (ADR-078) and the infrastructure play's one
argument check (ADR-079), each through a real ansible-playbook run on localhost (connection
local, so the probe's `python3 -` runs here; no Incus) with the project's ansible.cfg and
roles written by the test."""

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

# `marked` probes a file named by its defaults, built from a second default (templated as
# the role would); `plain` has no probe; `later` probes a file that always exists.
ROLES = {
    "marked": {
        "defaults": "marked_dir: /nonexistent\nmarked_file: '{{ marked_dir }}/mark'\n",
        "vars": "marked__want: [{path: '{{ marked_file }}'}]\n",
        "tasks": ("- name: Read the mark\n  anklume.incus.state_probe:\n"
                  "    files: '{{ marked__want }}'\n  register: marked__state\n"),
    },
    "plain": {"tasks": "- name: Say hello\n  ansible.builtin.debug: {msg: hello}\n"},
    "later": {
        "tasks": ("- name: Read the root folder\n  anklume.incus.state_probe:\n"
                  "    directories: [{path: /}]\n"),
    },
}
PROBE_PLAY = """\
- name: Probe the roles
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Every role's probe in one call
      anklume.incus.state_probe:
        roles: {roles}
      register: probed
    - name: Keep the answer
      ansible.builtin.copy:
        content: "{{{{ probed | to_json }}}}"
        dest: answer.json
        mode: "0644"
"""


def write_roles(root: Path) -> None:
    for role, parts in ROLES.items():
        for part, text in parts.items():
            (root / "roles" / role / part).mkdir(parents=True, exist_ok=True)
            (root / "roles" / role / part / "main.yml").write_text("---\n" + text)


def playbook(root: Path, play: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (root / "play.yml").write_text(play)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "PYTHONWARNINGS": "ignore"}
    argv = [str(PLAYBOOK), "play.yml", "-i", "localhost,", "-c", "local", *extra]
    return subprocess.run(argv, cwd=root, env=env, text=True, capture_output=True, check=False,
                          timeout=120)


def answer(root: Path, roles: list[str], *extra: str) -> dict[str, object]:
    proc = playbook(root, PROBE_PLAY.format(roles=json.dumps(roles)), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((root / "answer.json").read_text())


def test_roles_apply_from_the_first_that_drifted(tmp_path: Path) -> None:
    write_roles(tmp_path)
    # The mark is missing: marked drifted, so it and every role after it apply.
    got = answer(tmp_path, ["later", "marked", "later"])
    assert got["apply"] == ["marked", "later"]
    assert got["drift"]["later"] == []
    assert got["drift"]["marked"] == ["/nonexistent/mark is missing"]
    # The probe's path came from the role's vars and defaults, under the host's variables.
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "mark").write_text("x")
    got = answer(tmp_path, ["marked", "later"], "-e", f"marked_dir={tmp_path / 'here'}")
    assert got["apply"] == [] and got["drift"] == {"marked": [], "later": []}


def test_extra_vars_beat_the_roles_vars_in_its_probe(tmp_path: Path) -> None:
    """-e beats a role's vars/main.yml, in Ansible and so in the probe: a probe that read
    the role's own value would check a file the role, run with -e, never writes."""
    write_roles(tmp_path)
    (tmp_path / "mark").write_text("x")
    want = json.dumps({"marked__want": [{"path": str(tmp_path / "mark")}]})
    assert answer(tmp_path, ["marked"], "-e", want)["apply"] == []
    assert answer(tmp_path, ["marked"])["apply"] == ["marked"]


def test_a_role_without_a_probe_applies_with_everything_after_it(tmp_path: Path) -> None:
    write_roles(tmp_path)
    got = answer(tmp_path, ["later", "plain", "later"])
    assert got["apply"] == ["plain", "later"]
    assert got["drift"] == {"later": []}
    assert answer(tmp_path, ["community.general.some_role"])["apply"] == [
        "community.general.some_role"]


def test_a_role_with_dependencies_always_applies(tmp_path: Path) -> None:
    """Its dependencies run when it is included, and its probe does not read their state."""
    write_roles(tmp_path)
    (tmp_path / "roles" / "later" / "meta").mkdir()
    (tmp_path / "roles" / "later" / "meta" / "main.yml").write_text(
        "---\ndependencies: [plain]\n")
    assert answer(tmp_path, ["later"])["apply"] == ["later"]
    (tmp_path / "roles" / "later" / "meta" / "main.yml").write_text("---\ndependencies: []\n")
    assert answer(tmp_path, ["later"])["apply"] == []


def test_a_full_run_applies_every_role(tmp_path: Path) -> None:
    write_roles(tmp_path)
    (tmp_path / "roles" / "later" / "tasks" / "main.yml").write_text(
        "---\n- name: Read the root folder\n  anklume.incus.state_probe:\n"
        "    directories: [{path: /}]\n    force: '{{ not (anklume_state_probe | default(true)"
        " | bool) }}'\n")
    assert answer(tmp_path, ["later"])["apply"] == []
    assert answer(tmp_path, ["later"], "-e", "anklume_state_probe=false")["apply"] == ["later"]


def test_roles_goes_alone(tmp_path: Path) -> None:
    proc = playbook(tmp_path, PROBE_PLAY.format(roles="[]").replace(
        "roles: []", "roles: []\n        packages: [sudo]"))
    assert proc.returncode != 0
    assert "roles goes alone" in proc.stdout, proc.stdout


ARGS_PLAY = """\
- name: Check the site roles' arguments
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One check for every role
      anklume.incus.role_arguments:
        roles: [incus_instances, incus_firewall, incus_networks]
"""


def test_one_task_checks_every_roles_arguments_like_ansible(tmp_path: Path) -> None:
    """The project's own roles: their defaults pass (incus_firewall_record's default is
    None, which its spec's templated default allows); an override of the wrong type
    fails with Ansible's line, prefixed with the role."""
    (tmp_path / "roles").symlink_to(REPO / "roles")
    ok = playbook(tmp_path, ARGS_PLAY)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = playbook(tmp_path, ARGS_PLAY, "-e", '{"incus_instances_timeout": "soon", '
                   '"incus_networks_domains": [1]}')
    assert bad.returncode != 0
    assert ("role incus_instances: argument 'incus_instances_timeout' is of type str and we "
            "were unable to convert to int") in bad.stdout, bad.stdout
    assert "role incus_networks: argument 'incus_networks_domains' is of type list" in bad.stdout
    unknown = playbook(tmp_path, ARGS_PLAY.replace("incus_networks]", "incus_netwrks]"))
    assert unknown.returncode != 0 and "no role incus_netwrks" in unknown.stdout


def test_the_infrastructure_play_checks_exactly_the_roles_it_runs() -> None:
    import yaml
    infra = next(p for p in yaml.safe_load((REPO / "site.yml").read_text())
                 if "infra" in p.get("tags", []))
    checked = next(t["anklume.incus.role_arguments"]["roles"] for t in infra["tasks"]
                   if "anklume.incus.role_arguments" in t)
    imported = [t["ansible.builtin.import_role"] for t in infra["tasks"]
                if "ansible.builtin.import_role" in t]
    combined = [r["role"] for t in infra["tasks"] if "anklume.incus.reconcile_roles" in t
                for r in t["anklume.incus.reconcile_roles"]["roles"]]
    assert combined + [i["name"] for i in imported] == checked
    assert all(i["rolespec_validate"] is False for i in imported)
