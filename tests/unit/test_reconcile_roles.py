"""reconcile_roles (ADR-081): one-task roles run in one task as their roles would, through a
real ansible-playbook run on localhost with the project's ansible.cfg and roles written by
the test. Their module is anklume_nftables with `load: false`, which writes a file and
needs no Incus and no nft, so what each role saw is read back from its file."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_role_probes_and_arguments import playbook

pytestmark = pytest.mark.unit

WRITER_TASK = """\
- name: Write what this role sees
  anklume.incus.anklume_nftables:
    content: "{{{{ {prefix}__content }}}}\\n"
    path: "{{{{ {prefix}_dir }}}}/{prefix}.txt"
    table: t
    load: "{{{{ {prefix}_load }}}}"
  run_once: true
"""
ROLES = {
    "writer": {
        "defaults": ("writer_dir: /nonexistent\nwriter_text: from defaults\n"
                     "writer_load: false\n"),
        "vars": "writer__content: \"{{ writer_text }} + {{ writer_suffix | default('none') }}\"\n",
        "tasks": WRITER_TASK.format(prefix="writer"),
    },
    "second": {
        "defaults": "second_dir: /nonexistent\nsecond_load: false\n",
        "vars": "second__content: second\n",
        "tasks": WRITER_TASK.format(prefix="second"),
    },
    "twotasks": {
        "tasks": ("- name: One\n  ansible.builtin.debug: {msg: one}\n"
                  "- name: Two\n  ansible.builtin.debug: {msg: two}\n"),
    },
}
PLAY = """\
- name: Run the roles
  hosts: localhost
  gather_facts: false
  vars: {play_vars}
  tasks:
    - name: The roles in one task
      anklume.incus.reconcile_roles:
        vars: {shared}
        roles: {roles}
      register: done
      tags: [always]
    - name: Keep the answer
      ansible.builtin.copy:
        content: "{{{{ done | to_json }}}}"
        dest: answer.json
        mode: "0644"
      check_mode: false
      tags: [always]
"""


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for role, parts in ROLES.items():
        for part, text in parts.items():
            (tmp_path / "roles" / role / part).mkdir(parents=True, exist_ok=True)
            (tmp_path / "roles" / role / part / "main.yml").write_text("---\n" + text)
    return tmp_path


def entries(root: Path, writer_vars: dict[str, object] | None = None,
            extra: list[dict[str, object]] | None = None) -> list[dict[str, object]]:
    return [{"role": "writer", "tags": ["writer"],
             "vars": {"writer_dir": str(root), **(writer_vars or {})}},
            {"role": "second", "tags": ["second"], "vars": {"second_dir": str(root)}},
            *(extra or [])]


def run(root: Path, roles: list[dict[str, object]], *args: str,
        play_vars: dict[str, object] | None = None, shared: dict[str, object] | None = None,
        ok: bool = True) -> dict[str, object]:
    proc = playbook(root, PLAY.format(roles=json.dumps(roles), shared=json.dumps(shared or {}),
                                      play_vars=json.dumps(play_vars or {})), *args)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    return json.loads((root / "answer.json").read_text()) if ok else {"out": proc.stdout}


def written(root: Path, role: str) -> str | None:
    path = root / f"{role}.txt"
    return path.read_text() if path.exists() else None


def test_roles_run_in_order_with_their_defaults_and_vars_then_change_nothing(
        root: Path) -> None:
    got = run(root, entries(root))
    assert written(root, "writer") == "from defaults + none\n"
    assert written(root, "second") == "second\n"
    assert list(got["roles"]) == ["writer", "second"]
    assert got["changed"] is True
    assert [e["name"] for e in got["plan"]] == [f"{root}/writer.txt", f"{root}/second.txt"]
    again = run(root, entries(root))
    assert again["changed"] is False, again


def test_variables_stack_as_ansible_stacks_them(root: Path) -> None:
    # Play vars beat the role's defaults, the role's vars/main.yml beats play vars, the
    # entry's vars beat both, and -e beats everything.
    run(root, entries(root), play_vars={"writer_text": "from play"})
    assert written(root, "writer") == "from play + none\n"
    run(root, entries(root), play_vars={"writer__content": "play wins"})
    assert written(root, "writer") == "from defaults + none\n"
    run(root, entries(root, {"writer_suffix": "entry", "writer_text": "entry text"}),
        play_vars={"writer_text": "from play"})
    assert written(root, "writer") == "entry text + entry\n"
    run(root, entries(root, {"writer_text": "entry text"}), "-e", "writer_text=extra")
    assert written(root, "writer") == "extra + none\n"
    # The task's shared vars beat the play's, and lose to the entry's.
    run(root, entries(root), play_vars={"writer_suffix": "play"}, shared={"writer_suffix": "all"})
    assert written(root, "writer") == "from defaults + all\n"
    run(root, entries(root, {"writer_suffix": "entry"}), shared={"writer_suffix": "all"})
    assert written(root, "writer") == "from defaults + entry\n"


def test_check_mode_writes_nothing_and_reports_each_roles_change(root: Path) -> None:
    got = run(root, entries(root), "--check", "--diff")
    assert written(root, "writer") is None and written(root, "second") is None
    assert got["changed"] is True
    assert [d["after"] for d in got["diff"]] == ["from defaults + none\n", "second\n"]


@pytest.mark.parametrize(("args", "ran"), [
    (["--tags", "second"], ["second"]),
    (["--skip-tags", "second"], ["writer"]),
    (["--tags", "writer,second"], ["writer", "second"]),
    (["--tags", "other"], []),
])
def test_tags_select_roles(root: Path, args: list[str], ran: list[str]) -> None:
    got = run(root, entries(root), *args)
    assert list(got["roles"]) == ran
    assert got.get("skipped", False) is (not ran)
    assert [r for r in ("writer", "second") if written(root, r)] == ran


def test_a_role_that_fails_stops_the_ones_after_it(root: Path) -> None:
    got = run(root, entries(root, {"writer_load": "sometimes"}), ok=False)
    assert "writer (anklume.incus.anklume_nftables)" in got["out"], got
    assert "load" in got["out"], got
    assert written(root, "writer") is None and written(root, "second") is None


def test_a_later_role_whose_arguments_do_not_check_stops_at_its_turn(root: Path) -> None:
    """ADR-101: every role is templated before the first runs, but a role whose arguments
    do not check still stops the run at its turn, after the roles before it ran."""
    roles = entries(root)
    roles[1]["vars"] = {"second_dir": str(root), "second_load": "sometimes"}
    got = run(root, roles, ok=False)
    assert "second (anklume.incus.anklume_nftables)" in got["out"], got
    assert written(root, "writer") == "from defaults + none\n"
    assert written(root, "second") is None


def test_a_later_role_that_cannot_be_templated_fails_at_its_turn(root: Path) -> None:
    (root / "roles" / "second" / "defaults" / "main.yml").write_text(
        "---\nsecond_dir: \"{{ t81_nowhere_defined }}\"\nsecond_load: false\n")
    got = run(root, [entries(root)[0], {"role": "second", "tags": ["second"]}], ok=False)
    assert "t81_nowhere_defined" in got["out"], got
    assert written(root, "writer") == "from defaults + none\n"


def test_a_role_that_is_not_one_module_task_is_refused(root: Path) -> None:
    got = run(root, [{"role": "twotasks"}], ok=False)
    assert "role twotasks: tasks/main.yml must be one anklume.incus.* module task" in got["out"]


def test_an_entry_without_its_role_is_refused_by_the_spec(root: Path) -> None:
    got = run(root, [{"tags": ["writer"]}], ok=False)
    assert "missing required arguments: role" in got["out"], got


def test_an_unknown_role_is_refused(root: Path) -> None:
    got = run(root, [{"role": "nosuchrole"}], ok=False)
    assert "no role nosuchrole in the roles folders" in got["out"], got


TAG_SETS = [[], ["a"], ["b"], ["a", "b"], ["always"], ["never"], ["a", "never"], ["untagged"]]
ASKED = [[], ["all"], ["a"], ["b"], ["tagged"], ["untagged"], ["always"], ["never"]]
CASES = [(tags, only, skip) for tags, only, skip in itertools.product(TAG_SETS, ASKED, ASKED)
         if only or skip]
# Ansible's own verdict for each case, from a Task of a real Play (in a process of its own:
# Ansible's plugin loader, once set up, takes over the imports of the other tests).
ANSIBLES = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
out = []
for tags, only, skip in json.load(sys.stdin):
    play = Play.load({"name": "p", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "x", "ansible.builtin.debug": {"msg": "x"}, "tags": tags}]}, loader=DataLoader())
    out.append(play.get_tasks()[0][0].evaluate_tags(only, skip, {}))
print(json.dumps(out))
"""


def test_tag_selection_is_ansibles() -> None:
    from ansible_collections.anklume.incus.plugins.plugin_utils.tags import selected
    proc = subprocess.run([sys.executable, "-c", ANSIBLES], input=json.dumps(CASES),
                          capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    verdicts = json.loads(proc.stdout)
    assert len(verdicts) == len(CASES) > 400
    wrong = [(case, want) for case, want in zip(CASES, verdicts, strict=True)
             if selected(*case) != want]
    assert not wrong, wrong[:5]


def reconcile_task() -> dict[str, object]:
    import yaml
    repo = Path(__file__).resolve().parents[2]
    infra = next(p for p in yaml.safe_load((repo / "site.yml").read_text())
                 if "infra" in p.get("tags", []))
    task: dict[str, object] = next(t["anklume.incus.reconcile_roles"] for t in infra["tasks"]
                                   if "anklume.incus.reconcile_roles" in t)
    return task


def test_site_yml_runs_roles_of_one_module_task_with_variables_they_declare() -> None:
    """Each role site.yml runs through reconcile_roles is one module task (else the run
    stops), and each variable an entry gives is an option of that role's argument spec
    (a misspelt name would be given to nothing)."""
    import yaml
    from ansible_collections.anklume.incus.plugins.action.reconcile_roles import module_task
    repo = Path(__file__).resolve().parents[2]
    entries = reconcile_task()["roles"]
    assert isinstance(entries, list) and len(entries) == 6
    for entry in entries:
        folder = repo / "roles" / entry["role"]
        module_task(entry["role"], yaml.safe_load((folder / "tasks" / "main.yml").read_text()))
        spec = yaml.safe_load((folder / "meta" / "argument_specs.yml").read_text())
        options = spec["argument_specs"]["main"]["options"]
        assert set(entry.get("vars") or {}) <= set(options), entry


def test_site_yml_skips_the_task_exactly_when_its_tags_select_no_role() -> None:
    """The task's `when` (steps written apart from the roles, read before its arguments are
    templated) must skip the task for a run whose tags select none of its roles, and only
    then: a step list that missed a kind would skip bridges under --tags networks."""
    import ast

    import yaml
    from ansible_collections.anklume.incus.plugins.filter.scope import tag_selected
    from ansible_collections.anklume.incus.plugins.plugin_utils.tags import selected
    repo = Path(__file__).resolve().parents[2]
    infra = next(p for p in yaml.safe_load((repo / "site.yml").read_text())
                 if "infra" in p.get("tags", []))
    task = next(t for t in infra["tasks"] if "anklume.incus.reconcile_roles" in t)
    steps = ast.literal_eval(task["when"].split("|")[0].strip())
    role_tags = [[*entry["tags"], *infra["tags"]] for entry in reconcile_task()["roles"]]
    kinds = ["networks", "projects", "profiles", "instances", "infra", "provision", "all",
             "tagged", "untagged", "always", "never"]
    asked = [[], *([k] for k in kinds), ["networks", "provision"]]
    for only, skip in itertools.product(asked, asked):
        runs = only or ["all"]
        want = any(selected(tags, runs, skip) for tags in role_tags)
        assert bool(tag_selected(steps, runs, skip)) == want, (only, skip)
