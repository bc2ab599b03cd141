"""The daily commands' front (anklume/ops): the variables make hands a recipe, the one
reading of flags, scopes, and the target table kept in step with the Makefile and docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from anklume.errors import InputError
from anklume.ops import makevars, scope
from anklume.ops.help import text as help_text
from anklume.ops.main import check
from anklume.ops.targets import FLAGS, TARGETS, VARIABLES
from anklume.ops.tree import load
from tests.unit.gen_support import sync
from tests.unit.test_examples import _code

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _makeflags(tmp_path: Path, *assignments: str) -> str:
    """What a real GNU make hands its recipe for ASSIGNMENTS on its command line."""
    (tmp_path / "Makefile").write_text(
        "x:\n\t@python3 -c 'import os; print(os.environ[\"MAKEFLAGS\"], end=\"\")'\n")
    proc = subprocess.run(["make", "-s", "x", *assignments], cwd=tmp_path, check=True,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    return proc.stdout


def test_the_command_line_is_read_back_as_typed(tmp_path: Path) -> None:
    flags = _makeflags(tmp_path, "I=pro-dev", "CMD=echo $HOME 'a  b' \\x", "FORCE=", "N:=3")
    assert makevars.command_line(flags) == {
        "I": "pro-dev", "CMD": "echo $HOME 'a  b' \\x", "FORCE": "", "N": "3"}


def test_no_assignment_means_nothing_typed(tmp_path: Path) -> None:
    assert makevars.command_line(_makeflags(tmp_path)) == {}
    assert makevars.command_line("s -j2 --jobserver-auth=3,4") == {}


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE", "Yes"])
def test_yes_is_one_of_three_words(value: str) -> None:
    assert makevars.flag("FORCE", value) is True


@pytest.mark.parametrize("value", ["0", "false", "no", "", "NO"])
def test_no_is_one_of_three_words_or_nothing(value: str) -> None:
    assert makevars.flag("FORCE", value) is False


@pytest.mark.parametrize("value", ["2", "on", "y", "maybe", "force"])
def test_anything_else_is_refused_with_the_right_spelling(value: str) -> None:
    with pytest.raises(InputError, match=rf"FORCE={value} is not a yes or a no; write FORCE=1"):
        makevars.flag("FORCE", value)


def _check(target: str, flags: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return check(TARGETS[target], {"MAKEFLAGS": f" -- {flags}", "MAKELEVEL": "1", **(env or {})})


def test_a_variable_the_target_does_not_read_is_refused() -> None:
    with pytest.raises(InputError, match=r"NAME= is not read here; it reads INFRA=, DOMAIN="):
        _check("apply", "NAME=x")
    with pytest.raises(InputError, match=r"I= is not read here"):
        _check("sync", "I=pro-dev")


def test_a_make_started_by_a_make_ignores_its_parents_variables() -> None:
    env = {"MAKEFLAGS": " -- N=3 FORCE=1", "MAKELEVEL": "2"}
    assert check(TARGETS["apply"], env) == {}
    assert check(TARGETS["destroy"], env) == {"FORCE": "1"}


def test_an_accepted_variable_from_the_environment_is_read() -> None:
    assert _check("destroy", "", {"DOMAIN": "pro", "NAME": "x"}) == {"DOMAIN": "pro"}


def test_required_variables_and_flags_are_checked_before_anything_runs() -> None:
    with pytest.raises(InputError, match=r"NAME= is required"):
        _check("restore", "DOMAIN=pro")
    with pytest.raises(InputError, match=r"WAIT=soon is not a yes or a no"):
        _check("apply", "WAIT=soon")


def test_prune_with_a_scope_is_refused_with_the_reason() -> None:
    with pytest.raises(InputError, match=r"PRUNE=1 cannot be combined with DOMAIN=; pruning"):
        _check("apply", "PRUNE=1 DOMAIN=pro")
    with pytest.raises(InputError, match=r"PRUNE=1 cannot be combined with LIMIT="):
        _check("apply", "PRUNE=yes LIMIT=pro")
    assert _check("apply", "PRUNE=0 DOMAIN=pro") == {"PRUNE": "0", "DOMAIN": "pro"}


CLASS = """\
project_name: t27unit
global:
  base_subnet: "10.100"
domains:
  admin:
    subnet_id: 0
    machines:
      admin-ctl: {ip: "10.100.0.10"}
  pro:
    subnet_id: 2
    machines:
      pro-dev: {ip: "10.100.2.10"}
      pro-web: {ip: "10.100.2.11"}
  empty:
    subnet_id: 3
domain_templates:
  student:
    count: 3
    first_subnet_id: 11
    machines:
      srv: {ip_host: 10}
"""


@pytest.fixture
def tree(tmp_path: Path) -> scope.Tree:
    assert sync(tmp_path, CLASS).code == 0
    return load(tmp_path)


@pytest.mark.parametrize(("values", "hosts"), [
    ({"DOMAIN": "pro"}, ["pro-dev", "pro-web"]),
    ({"DOMAIN": "student"}, ["student01-srv", "student02-srv", "student03-srv"]),
    ({"DOMAIN": "student*"}, ["student01-srv", "student02-srv", "student03-srv"]),
    ({"DOMAIN": "student0[12], admin"}, ["admin-ctl", "student01-srv", "student02-srv"]),
    ({"I": "pro-dev"}, ["pro-dev"]),
    ({"I": "pro-web,student02-srv"}, ["pro-web", "student02-srv"]),
    ({"LIMIT": "pro"}, ["pro-dev", "pro-web"]),
    ({"LIMIT": "pro-dev"}, ["pro-dev"]),
])
def test_a_scope_is_exactly_what_it_names(tree: scope.Tree, values: dict[str, str],
                                          hosts: list[str]) -> None:
    found = scope.resolve(tree, values)
    assert list(found.hosts) == hosts
    assert found.named
    assert found.by_instance == ("I" in values or values.get("LIMIT") == "pro-dev")


def test_no_scope_is_everything(tree: scope.Tree) -> None:
    found = scope.resolve(tree, {})
    assert found.everything
    assert len(found.hosts) == 6


@pytest.mark.parametrize(("values", "message"), [
    ({"I": "pro-dv"}, r"I=pro-dv is no declared instance; did you mean pro-dev\?"),
    ({"I": "pro"}, r"I=pro is no declared instance \(a domain: use DOMAIN=\)"),
    ({"I": "student*"}, r"I=student\* is no declared instance"),
    ({"DOMAIN": "studnet*"}, r"unknown domain DOMAIN=studnet\*: it matches no domain or template"),
    ({"DOMAIN": "pro-dev"}, r"unknown domain DOMAIN=pro-dev \(an instance: use I=\)"),
    ({"DOMAIN": "pro", "I": "pro-dev"}, r"DOMAIN= and I= given together"),
    ({"LIMIT": "pro,pro-dev"}, r"LIMIT=pro,pro-dev mixes domains and instances"),
    ({"DOMAIN": " , "}, r"DOMAIN= is empty"),
])
def test_a_scope_that_names_nothing_real_is_refused(tree: scope.Tree, values: dict[str, str],
                                                    message: str) -> None:
    with pytest.raises(InputError, match=message):
        scope.resolve(tree, values)


# --- the table, the Makefile, the help and the docs stay in step ---------------------

def _makefile_targets() -> set[str]:
    found: set[str] = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        m = re.match(r"^([a-z][a-z0-9 \\-]*[a-z0-9]):(?!=)", line)
        if m and "$(" not in m.group(1):
            found.update(m.group(1).split())
    text = (REPO / "Makefile").read_text()
    for m in re.finditer(r"^((?:[a-z-]+ )+\\\n(?:[a-z- ]+\\\n)*[a-z- ]+):", text, re.M):
        found.update(m.group(1).replace("\\\n", " ").split())
    return found


def test_every_target_of_the_table_is_in_the_makefile_and_back() -> None:
    assert _makefile_targets() == set(TARGETS)


def _phony() -> set[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    return {w for m in re.finditer(r"^\.PHONY:(.*)$", text, re.M) for w in m.group(1).split()}


def test_every_target_is_phony_so_a_folder_of_its_name_never_hides_it() -> None:
    """`make nftables` once said "'nftables' is up to date": the tree has a nftables/ folder."""
    assert (REPO / "nftables").is_dir()
    assert set(TARGETS) - _phony() == set()


def test_every_variable_a_target_reads_is_explained_once() -> None:
    used = {v for t in TARGETS.values() for v in t.variables}
    assert used == set(VARIABLES)
    assert used >= FLAGS


def test_make_help_groups_every_target_and_marks_root() -> None:
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout
    assert out == help_text()
    for name, target in TARGETS.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(f"  {name} "))
        assert line.endswith("(root)") == target.root, line
    assert "soak: cold applies in a row (default 5)" in out
    assert "test-incus" not in out


MAKE_COMMAND = re.compile(r"(?<![\w/.-])make ((?:-[\w-]+ )*)([a-z][a-z0-9-]*)((?: +[A-Z_]+=\S*)*)")


def _documented_commands() -> list[tuple[str, str]]:
    """Every `make TARGET VAR=...` shown as code in README.md, docs/ and examples/."""
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             *sorted((REPO / "examples").rglob("*.md"))]
    found = []
    for path in files:
        for code in _code(path.read_text(encoding="utf-8")):
            for m in MAKE_COMMAND.finditer(code):
                found.append((f"{path.relative_to(REPO)}: {m.group(0)}", m.group(0)))
    return found


def test_every_make_command_in_the_docs_names_a_target_and_variables_it_reads() -> None:
    commands = _documented_commands()
    assert len(commands) > 100, "the docs show make commands: the scan finds them"
    wrong = []
    for where, command in commands:
        words = [w for w in command.split()[1:] if not w.startswith("-")]
        name, assignments = words[0], words[1:]
        target = TARGETS.get(name)
        if target is None:
            wrong.append(f"{where} (no target {name})")
            continue
        for a in assignments:
            var = a.split("=", 1)[0]
            if var not in target.variables and not any(var.startswith(p)
                                                       for p in target.prefixes):
                wrong.append(f"{where} ({name} does not read {var}=)")
    assert wrong == []


def test_the_variables_table_in_the_docs_is_the_one_in_the_code() -> None:
    from anklume.ops.docs import table
    doc = (REPO / "docs" / "make-targets.md").read_text(encoding="utf-8")
    assert table() in doc, "docs/make-targets.md is stale: python -m anklume.ops.docs"


def test_help_and_checks_need_only_the_system_python(tmp_path: Path) -> None:
    """make help and the shell targets' checks run before the virtualenv exists."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import anklume.ops.main as m; "
            "sys.exit(m.main(['--check', 'host']))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                          text=True, check=False, env={"MAKEFLAGS": " -- I=x", "MAKELEVEL": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("make host: I= is not read here; it reads no variable "
                                   "(make help)")


def test_ansible_started_by_a_target_prints_no_python_warning(tmp_path: Path) -> None:
    """What make apply/plan print ends with our summary, not with a library's warning."""
    from anklume.ops.context import Context
    ctx = Context(TARGETS["apply"], {}, root=tmp_path)
    proc = subprocess.run([str(ctx.bin / "ansible-playbook"), "--version"], cwd=tmp_path,
                          env=ctx.env(), capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("ansible-playbook [core ")
    assert "Warning" not in proc.stderr, proc.stderr
