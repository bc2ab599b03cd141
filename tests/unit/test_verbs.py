"""The everyday verbs (anklume/ops/verbs.py, power.py, logs.py, use.py) without a daemon.

An `incus` executable first on PATH stands in for the client: it answers the one bulk
query from a JSON state file, changes that state for start/stop/restart/delete/config and
records every command line it was given, with its start and end times. exec runs the
command line with the host's sh, so its output and exit status are real. What the real
daemon does is tested in tests/integration/test_verbs.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from anklume.errors import InputError
from anklume.ops import logs, main, power, use, verbs
from anklume.ops.context import Context
from anklume.ops.targets import TARGETS
from tests.incus_helpers import REPO

pytestmark = pytest.mark.unit

OWNER = "t27v"

FAKE = r'''#!PYTHON
import fcntl, json, os, subprocess, sys, time
state_dir = os.environ["FAKE_INCUS"]
argv = sys.argv[1:]
began = time.monotonic()
path = os.path.join(state_dir, "state.json")


def load():
    with open(path) as fh:
        return json.load(fh)


def save(state):
    with open(path + ".tmp", "w") as fh:
        json.dump(state, fh)
    os.replace(path + ".tmp", path)


def record(rc):
    with open(os.path.join(state_dir, "calls.jsonl"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps({"argv": argv, "began": began, "ended": time.monotonic()}) + "\n")
    sys.exit(rc)


def fail(text):
    print("Error: " + text, file=sys.stderr)
    record(1)


def target():
    at = argv.index("--project")
    project, name = argv[at + 1], argv[at + 2].split(":")[-1]
    return project, name


if argv[0] == "query":
    if "unreachable" in argv[-1]:
        fail("The remote isn't reachable")
    print(json.dumps(list(load()["instances"].values())))
    record(0)
lock = open(os.path.join(state_dir, "lock"), "w")
verb = argv[0] if argv[0] not in ("config",) else " ".join(argv[:2])
project, name = target()
key = project + "/" + name
if verb == "exec":
    if os.environ.get("FAKE_EXEC") == "no":
        record(0)
    rc = subprocess.run(argv[argv.index("--") + 1:]).returncode
    record(rc)
if verb in ("start", "stop", "restart"):
    time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
fcntl.flock(lock, fcntl.LOCK_EX)
state = load()
inst = state["instances"].get(key)
if inst is None:
    fail("Instance not found")
if verb == "start":
    inst["status"] = "Running"
elif verb == "stop":
    inst["status"] = "Stopped"
elif verb == "restart":
    pass
elif verb == "delete":
    if inst["expanded_config"].get("security.protection.delete") == "true":
        fail("Instance is protected from being deleted")
    del state["instances"][key]
elif verb == "config set":
    k, _, v = argv[-1].partition("=")
    inst["config"][k] = v
    inst["expanded_config"][k] = v
elif verb == "config unset":
    inst["config"].pop(argv[-1], None)
    inst["expanded_config"].pop(argv[-1], None)
elif verb == "console":
    if inst.get("console") is None:
        fail("Instance is not a container")
    print(inst["console"])
elif verb == "info":
    print("Name: " + name + "\nStatus: " + inst["status"].upper() + "\n\nLog:\n\n"
          + inst.get("log", ""))
save(state)
record(0)
'''


def machine(name: str, project: str, status: str = "Running", owner: str | None = OWNER,
            protected: bool = False, **extra: Any) -> dict[str, Any]:
    config = {} if owner is None else {"user.anklume.managed": "true",
                                       "user.anklume.owner": owner}
    if protected:
        config["security.protection.delete"] = "true"
    return {"name": name, "project": project, "status": status, "config": config,
            "expanded_config": dict(config), "console": "console of " + name,
            "log": "lxc log of " + name, **extra}


class Lab:
    """A rendered tree (two domains, two machines each) and the fake incus beside it."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.state = root / "fake"
        self.state.mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "incus"
        fake.write_text(FAKE.replace("PYTHON", sys.executable))
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_INCUS", str(self.state))
        monkeypatch.setenv("ANKLUME_LOCK_DIR", str(root / "locks"))
        for var in ("MAKEFLAGS", "MAKELEVEL", "ANKLUME_LOCK", "I", "CMD", "DOMAIN", "FORCE"):
            monkeypatch.delenv(var, raising=False)
        self.ran: list[str] = []
        self.domains = {"t27va": ["t27va-one", "t27va-two"], "t27vb": ["t27vb-one", "t27vb-two"]}
        self.write_tree()
        self.set({f"{d}/{m}": machine(m, d, protected=m == "t27va-one")
                  for d, ms in self.domains.items() for m in ms})

    def write_tree(self, remote: str = "local") -> None:
        (self.root / "group_vars").mkdir(exist_ok=True)
        (self.root / "host_vars").mkdir(exist_ok=True)
        allvars = {"anklume_project_name": OWNER, "anklume_incus_remote": remote,
                   "anklume_domains": {d: {"machines": ms} for d, ms in self.domains.items()}}
        (self.root / "group_vars" / "all.yml").write_text(yaml.safe_dump(allvars))
        for d, ms in self.domains.items():
            for m in ms:
                (self.root / "host_vars" / f"{m}.yml").write_text(
                    yaml.safe_dump({"instance_domain": d, "instance_type": "lxc"}))

    def set(self, instances: dict[str, Any]) -> None:
        (self.state / "state.json").write_text(json.dumps({"instances": instances}))

    def instances(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "state.json").read_text())["instances"]
        return data

    def calls(self, verb: str | None = None) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        rows = [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []
        return [r for r in rows if verb is None or r["argv"][0] == verb]

    def argvs(self, skip_query: bool = True) -> list[list[str]]:
        return [r["argv"] for r in self.calls() if not (skip_query and r["argv"][0] == "query")]

    def ctx(self, target: str, **values: str) -> Context:
        return Context(TARGETS[target], values, root=self.root, out=io.StringIO(),
                       err=io.StringIO())

    def make(self, target: str, capsys: pytest.CaptureFixture[str], **values: str
             ) -> tuple[int, str]:
        """The target through main, as make runs it: (exit status, stderr)."""
        flags = " ".join(f"{k}={v}".replace(" ", "\\ ") for k, v in values.items())
        os.environ["MAKEFLAGS"] = f" -- {flags}"
        try:
            rc = main.main([target])
        finally:
            del os.environ["MAKEFLAGS"]
        return rc, capsys.readouterr().err


@pytest.fixture()
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.chdir(tmp_path)
    return Lab(tmp_path, monkeypatch)


def out(ctx: Context) -> str:
    assert isinstance(ctx.out, io.StringIO)
    return ctx.out.getvalue()


def err(ctx: Context) -> str:
    assert isinstance(ctx.err, io.StringIO)
    return ctx.err.getvalue()


# --- the table ----------------------------------------------------------------------------

def test_every_verb_the_makefile_routes_has_a_runner() -> None:
    assert set(verbs.RUNNERS) == {"shell", "exec", "logs", "start", "stop", "restart",
                                  "delete", "use", "copy"}
    for name in verbs.RUNNERS:
        assert name in TARGETS


# --- one instance: shell, exec, logs --------------------------------------------------------

@pytest.mark.parametrize("target", ["shell", "exec", "logs", "delete"])
@pytest.mark.parametrize(("value", "what"), [
    ("t27va-one,t27vb-one", "names 2 instances: make {t} takes one"),
    ("t27va-*", "is a pattern: make {t} takes one instance by its name"),
    ("t27va", "is no declared instance (a domain: use DOMAIN=)"),
])
def test_a_list_a_pattern_or_a_domain_is_refused_in_one_line(
        lab: Lab, capsys: pytest.CaptureFixture[str], target: str, value: str, what: str
) -> None:
    values = {"I": value, **({"CMD": "true"} if target == "exec" else {})}
    rc, text = lab.make(target, capsys, **values)
    assert rc == 2
    assert text.count("\n") == 1 and what.format(t=target) in text, text
    assert text.startswith(f"make {target}: I={value}")
    assert lab.argvs() == []


def test_shell_runs_a_login_shell_in_the_instance_project(lab: Lab,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXEC", "no")  # not a login shell on this host
    ctx = lab.ctx("shell", I="t27vb-two")
    assert verbs.shell(ctx) == 0
    # not a terminal here: the prompt's mark without colour (tests/unit/test_colors_shell.py)
    assert lab.argvs() == [["exec", "--project", "t27vb", "t27vb-two", "--env",
                            "ANKLUME_PS1=[t27vb] ", "--env",
                            f"PROMPT_COMMAND={verbs.PROMPT_COMMAND}", "--", "sh", "-c",
                            verbs.LOGIN]]


def test_on_a_remote_the_instance_is_addressed_on_it(lab: Lab) -> None:
    lab.write_tree(remote="farm")
    assert verbs.exec_(lab.ctx("exec", I="t27va-two", CMD="true")) == 0
    assert lab.calls("query")[0]["argv"][1].startswith("farm:/1.0/instances?")
    assert lab.argvs() == [["exec", "--project", "t27va", "farm:t27va-two", "--", "sh", "-c",
                            "true"]]


def test_an_unreachable_incus_is_one_line(lab: Lab) -> None:
    lab.write_tree(remote="unreachable")
    with pytest.raises(InputError, match="cannot read the instances of Incus 'unreachable': "
                                         "The remote isn't reachable"):
        verbs.exec_(lab.ctx("exec", I="t27va-two", CMD="true"))


@pytest.mark.parametrize("status", [0, 3, 42])
def test_exec_returns_exactly_the_command_status(lab: Lab, status: int,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    command = f"echo out-$((20+7)) '$HOME' \"a b\"; exit {status}"
    ctx = lab.ctx("exec", I="t27vb-one", CMD=command)
    assert verbs.exec_(ctx) == status
    assert capfd.readouterr().out == "out-27 $HOME a b\n"
    assert lab.argvs() == [["exec", "--project", "t27vb", "t27vb-one", "--", "sh", "-c",
                            command]]
    if status:
        assert err(ctx) == f"exec: `{command}` exited with status {status} in t27vb-one\n"
    else:
        assert err(ctx) == ""


def test_exec_through_main_returns_the_status_and_reads_cmd_as_typed(
        lab: Lab, capfd: pytest.CaptureFixture[str]) -> None:
    # make passes CMD in MAKEFLAGS with spaces escaped and each $ doubled.
    os.environ["MAKEFLAGS"] = r" -- CMD=echo\ $$HOME\ x;\ exit\ 7 I=t27va-two"
    try:
        assert main.main(["exec"]) == 7
    finally:
        del os.environ["MAKEFLAGS"]
    assert lab.argvs()[0][-1] == "echo $HOME x; exit 7"
    got = capfd.readouterr()
    assert got.out.startswith("/") and got.out.endswith(" x\n")


@pytest.mark.parametrize("target", ["shell", "exec"])
def test_a_stopped_or_missing_instance_is_refused_before_anything_runs(lab: Lab,
                                                                       target: str) -> None:
    state = lab.instances()
    state["t27vb/t27vb-one"]["status"] = "Stopped"
    del state["t27vb/t27vb-two"]
    lab.set(state)
    values = {"CMD": "true"} if target == "exec" else {}
    with pytest.raises(InputError, match=r"instance t27vb-one \(project t27vb\) is Stopped; "
                                         "make start I=t27vb-one"):
        verbs.RUNNERS[target](lab.ctx(target, I="t27vb-one", **values))
    with pytest.raises(InputError, match="instance t27vb-two does not exist in project t27vb: "
                                         "make apply creates it"):
        verbs.RUNNERS[target](lab.ctx(target, I="t27vb-two", **values))
    assert lab.argvs() == []


def test_logs_prints_the_console_and_the_instance_log(lab: Lab, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "INCUS_LOGS", tmp_path / "nowhere")
    ctx = lab.ctx("logs", I="t27va-two")
    assert logs.run(ctx) == 0
    assert out(ctx) == ("== console log of t27va-two (incus console --show-log)\n"
                        "console of t27va-two\n"
                        "== instance log of t27va-two (incus info --show-log)\n"
                        "lxc log of t27va-two\n")
    assert lab.argvs() == [["console", "--project", "t27va", "t27va-two", "--show-log"],
                           ["info", "--project", "t27va", "t27va-two", "--show-log"]]


def test_logs_says_which_log_is_not_available(lab: Lab) -> None:
    state = lab.instances()
    state["t27va/t27va-two"].update(console=None, log="")
    lab.set(state)
    ctx = lab.ctx("logs", I="t27va-two")
    assert logs.run(ctx) == 1
    assert out(ctx).splitlines() == [
        "== console log of t27va-two (incus console --show-log): not available (Instance is "
        "not a container)",
        "== instance log of t27va-two (incus info --show-log): not available (Incus holds no "
        "log for it yet)"]


def test_a_drained_console_is_read_back_from_the_file_incus_keeps(lab: Lab,
                                                                  tmp_path: Path) -> None:
    kept = tmp_path / "incuslogs" / "t27va_t27va-two" / "console.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("".join(f"line {n}\n" for n in range(250)))
    state = lab.instances()
    state["t27va/t27va-two"]["console"] = ""  # a second read: nothing new
    lab.set(state)
    ctx = lab.ctx("logs", I="t27va-two")
    tree = ctx.tree()
    inst = tree.instances["t27va-two"]
    assert logs.console(ctx, tree, inst, base=tmp_path / "incuslogs")
    lines = out(ctx).splitlines()
    assert lines[0] == f"== console log of t27va-two ({kept})"
    assert lines[1] == "[... 50 earlier lines]" and lines[-1] == "line 249"
    ctx = lab.ctx("logs", I="t27va-two")
    assert not logs.console(ctx, tree, inst, base=tmp_path / "none")
    assert "nothing new since it was last read" in out(ctx)


def test_the_default_project_has_no_prefix_in_incus_log_folder(tmp_path: Path) -> None:
    from anklume.ops.tree import Instance, Tree
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "console.log").write_text("x")
    tree = Tree(root=tmp_path)
    assert logs.console_file(tree, Instance("box", "d", "default"), tmp_path) == \
        tmp_path / "box" / "console.log"
    tree.remote = "farm"
    assert logs.console_file(tree, Instance("box", "d", "default"), tmp_path) is None


# --- start, stop, restart ----------------------------------------------------------------

def test_stop_acts_on_exactly_the_domain_in_scope(lab: Lab) -> None:
    ctx = lab.ctx("stop", DOMAIN="t27vb")
    assert power.stop(ctx) == 0
    assert {k: v["status"] for k, v in lab.instances().items()} == {
        "t27va/t27va-one": "Running", "t27va/t27va-two": "Running",
        "t27vb/t27vb-one": "Stopped", "t27vb/t27vb-two": "Stopped"}
    assert sorted(a[3] for a in lab.argvs()) == ["t27vb-one", "t27vb-two"]
    assert sorted(out(ctx).splitlines()) == ["stop t27vb-one (t27vb): stopped",
                                             "stop t27vb-two (t27vb): stopped",
                                             "stop: 2 stopped"]


def test_start_stop_restart_say_what_each_instance_was(lab: Lab) -> None:
    state = lab.instances()
    state["t27va/t27va-two"]["status"] = "Stopped"
    lab.set(state)
    ctx = lab.ctx("start", I="t27va-one,t27va-two")
    assert power.start(ctx) == 0
    assert sorted(out(ctx).splitlines()) == ["start t27va-one (t27va): already running",
                                             "start t27va-two (t27va): started",
                                             "start: 1 already running, 1 started"]
    state = lab.instances()
    state["t27vb/t27vb-one"]["status"] = "Stopped"
    lab.set(state)
    ctx = lab.ctx("restart", DOMAIN="t27vb")
    assert power.restart(ctx) == 0
    assert sorted(out(ctx).splitlines()) == [
        "restart t27vb-one (t27vb): started (it was stopped)",
        "restart t27vb-two (t27vb): restarted", "restart: 1 restarted, 1 started"]
    assert sorted(a[0] for a in lab.argvs()) == ["restart", "start", "start"]


def test_a_missing_instance_is_reported_never_created(lab: Lab) -> None:
    state = lab.instances()
    del state["t27vb/t27vb-two"]
    state["t27vb/t27vb-one"]["status"] = "Stopped"
    lab.set(state)
    ctx = lab.ctx("start", DOMAIN="t27vb")
    assert power.start(ctx) == 1
    assert ("start t27vb-two (t27vb): missing: instance t27vb-two does not exist in project "
            "t27vb: make apply creates it") in out(ctx).splitlines()
    assert "start: 1 missing, 1 started" in out(ctx)
    assert "make apply creates it" in err(ctx)
    assert [a[3] for a in lab.argvs()] == ["t27vb-one"]
    assert "t27vb/t27vb-two" not in lab.instances()


def test_an_instance_of_another_owner_or_unmarked_is_left_alone(lab: Lab) -> None:
    state = lab.instances()
    state["t27vb/t27vb-one"] = machine("t27vb-one", "t27vb", owner="someone")
    state["t27vb/t27vb-two"] = machine("t27vb-two", "t27vb", owner=None)
    lab.set(state)
    ctx = lab.ctx("stop", DOMAIN="t27vb")
    assert power.stop(ctx) == 1
    lines = sorted(out(ctx).splitlines())
    assert lines == [
        "stop t27vb-one (t27vb): left alone: it belongs to anklume project 'someone', not "
        "'t27v'",
        "stop t27vb-two (t27vb): left alone: it has no user.anklume.managed=true marker (not "
        "made by anklume)",
        "stop: 2 not ours"]
    assert lab.argvs() == []


@pytest.mark.parametrize(("parallel", "most"), [("1", 1), ("2", 2), ("", 4)])
def test_at_most_parallel_operations_run_at_a_time(lab: Lab, monkeypatch: pytest.MonkeyPatch,
                                                   parallel: str, most: int) -> None:
    monkeypatch.setenv("FAKE_DELAY", "0.4")
    values = {"PARALLEL": parallel} if parallel else {}
    started = time.monotonic()
    assert power.stop(lab.ctx("stop", **values)) == 0
    took = time.monotonic() - started
    spans = [(c["began"], c["ended"]) for c in lab.calls("stop")]
    assert len(spans) == 4
    overlap = max(sum(1 for b, e in spans if b <= t < e) for t, _ in spans)
    assert overlap == most
    assert took >= 0.4 * (4 // most)


def test_a_parallel_that_is_not_a_number_is_refused(lab: Lab,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = lab.make("stop", capsys, PARALLEL="many")
    assert (rc, text) == (2, "make stop: PARALLEL=many is not a positive number; "
                             "e.g. PARALLEL=4\n")
    assert lab.argvs() == []


def test_a_failing_incus_operation_is_named_and_fails_the_run(lab: Lab) -> None:
    lab.set({**lab.instances(), "t27vb/t27vb-one": {**machine("t27vb-one", "t27vb",
                                                              status="Stopped")}})
    bad = lab.root / "bin" / "incus"
    bad.write_text(bad.read_text().replace('if verb == "start":\n',
                                            'if verb == "start":\n    fail("no root disk")\n'))
    ctx = lab.ctx("start", I="t27vb-one")
    assert power.start(ctx) == 1
    assert out(ctx).splitlines() == ["start t27vb-one (t27vb): failed: no root disk",
                                     "start: 1 failed"]


# --- delete --------------------------------------------------------------------------------

def test_delete_removes_one_unprotected_instance_and_says_apply_recreates_it(lab: Lab) -> None:
    ctx = lab.ctx("delete", I="t27vb-two")
    assert verbs.delete(ctx) == 0
    assert sorted(lab.instances()) == ["t27va/t27va-one", "t27va/t27va-two", "t27vb/t27vb-one"]
    assert lab.argvs() == [["delete", "--project", "t27vb", "t27vb-two", "--force"]]
    assert "infra.yml still declares t27vb-two: the next make apply creates it" in out(ctx)


def test_a_protected_instance_needs_force(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = lab.make("delete", capsys, I="t27va-one")
    assert rc == 2
    assert text == ("make delete: instance t27va-one is protected (security.protection.delete="
                    "true, ephemeral: false); make delete I=t27va-one FORCE=1 lifts the "
                    "protection and deletes it\n")
    assert "t27va/t27va-one" in lab.instances() and lab.argvs() == []
    rc, text = lab.make("delete", capsys, I="t27va-one", FORCE="1")
    assert rc == 0, text
    assert sorted(lab.instances()) == ["t27va/t27va-two", "t27vb/t27vb-one", "t27vb/t27vb-two"]
    assert lab.argvs() == [
        ["config", "set", "--project", "t27va", "t27va-one", "security.protection.delete=false"],
        ["delete", "--project", "t27va", "t27va-one", "--force"]]


@pytest.mark.parametrize(("owner", "why"), [
    ("someone", "it belongs to anklume project 'someone', not 't27v'"),
    (None, "it has no user.anklume.managed=true marker (not made by anklume)"),
])
def test_delete_refuses_an_instance_that_is_not_this_trees(lab: Lab, owner: str | None,
                                                           why: str) -> None:
    lab.set({**lab.instances(), "t27vb/t27vb-one": machine("t27vb-one", "t27vb", owner=owner)})
    for force in ("", "1"):
        with pytest.raises(InputError) as exc:
            verbs.delete(lab.ctx("delete", I="t27vb-one", FORCE=force))
        assert why in str(exc.value)
    assert "t27vb/t27vb-one" in lab.instances() and lab.argvs() == []


def test_delete_of_a_missing_instance_deletes_nothing(lab: Lab) -> None:
    state = lab.instances()
    del state["t27vb/t27vb-two"]
    lab.set(state)
    with pytest.raises(InputError, match="instance t27vb-two does not exist in project t27vb; "
                                         "nothing to delete"):
        verbs.delete(lab.ctx("delete", I="t27vb-two"))
    assert lab.argvs() == []


def test_a_failed_delete_puts_the_protection_back(lab: Lab) -> None:
    bad = lab.root / "bin" / "incus"
    bad.write_text(bad.read_text().replace('elif verb == "delete":\n',
                                           'elif verb == "delete":\n    fail("disk busy")\n'))
    ctx = lab.ctx("delete", I="t27va-one", FORCE="1")
    assert verbs.delete(ctx) == 1
    assert "t27va-one was not deleted: disk busy" in err(ctx)
    live = lab.instances()["t27va/t27va-one"]
    assert live["config"]["security.protection.delete"] == "true"


# --- use -----------------------------------------------------------------------------------

EXAMPLE = """project_name: t27vex
global: {base_subnet: "10.126", default_os_image: anklume/debian-12}
domains:
  t27vx:
    subnet_id: 9
    machines:
      t27vx-box: {type: lxc, ip: 10.126.9.10}
"""
CURRENT = """project_name: t27v
global: {base_subnet: "10.126", default_os_image: anklume/debian-12}
domains:
  t27vb:
    subnet_id: 2
    ephemeral: true
    machines:
      t27vb-one: {type: lxc, ip: 10.126.2.10}
      t27vb-two: {type: lxc, ip: 10.126.2.11}
"""


@pytest.fixture()
def usable(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The lab with the generator linked in, examples/ of its own and the current
    infra.yml; sync-clean, plan and destroy recorded instead of run."""
    (lab.root / "scripts").symlink_to(REPO / "scripts")
    for name, text in (("small", EXAMPLE), ("broken", "domains: [\n"), ("other", EXAMPLE)):
        (lab.root / "examples" / name).mkdir(parents=True)
        (lab.root / "examples" / name / "infra.yml").write_text(text)
    (lab.root / "examples" / "no-infra").mkdir()
    (lab.root / "infra.yml").write_text(CURRENT)
    ran = lab.ran

    def recorder(name: str, rc: int = 0) -> Any:
        def run(ctx: Context) -> int:
            ran.append(f"{name} {ctx.values}")
            if name == "destroy":
                lab.set({k: v for k, v in lab.instances().items()
                         if not k.startswith("t27vb/")})
            return rc
        return run

    for name in ("sync_clean", "plan", "destroy"):
        monkeypatch.setattr(use.playbooks, name, recorder(name))
    return lab


def _files(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in root.iterdir() if p.name.startswith("infra.yml")}


def test_use_lists_the_examples_for_an_unknown_name(usable: Lab,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("nope", "../examples/small", "no-infra"):
        rc, text = usable.make("use", capsys, EXAMPLE=name)
        assert (rc, text) == (2, f"make use: EXAMPLE={name} is no example; examples: broken, "
                                 "other, small\n")
    assert _files(usable.root) == {"infra.yml": CURRENT}


def test_use_refuses_while_instances_of_the_current_description_exist(
        usable: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = usable.make("use", capsys, EXAMPLE="small")
    assert rc == 2
    assert text == ("make use: 2 instance(s) of the current infra.yml exist in Incus "
                    "(t27vb-one, t27vb-two); make use EXAMPLE=small DESTROY=1 deletes them "
                    "first (protected ones too); KEEP=1 leaves them (they become orphans)\n")
    rc, text = usable.make("use", capsys, EXAMPLE="small", KEEP="1", DESTROY="1")
    assert (rc, text.split(";")[0]) == (2, "make use: KEEP=1 and DESTROY=1 given together")
    rc, text = usable.make("use", capsys, EXAMPLE="small", KEEP="maybe")
    assert rc == 2 and "KEEP=maybe is not a yes or a no" in text
    assert _files(usable.root) == {"infra.yml": CURRENT}
    assert usable.ran == []
    assert len(usable.instances()) == 4


def test_only_this_owners_instances_count_as_existing(usable: Lab) -> None:
    usable.set({"t27vb/t27vb-one": machine("t27vb-one", "t27vb", owner="someone"),
                "t27va/t27va-one": machine("t27va-one", "t27va")})  # t27va: not in CURRENT
    assert use.existing(usable.ctx("use", EXAMPLE="small")) == []


def test_a_broken_example_is_refused_before_anything_changes(usable: Lab) -> None:
    with pytest.raises(InputError, match=r"examples/broken/infra\.yml does not render"):
        use.run(usable.ctx("use", EXAMPLE="broken", DESTROY="1"))
    assert usable.ran == []
    assert _files(usable.root) == {"infra.yml": CURRENT}


def test_use_keep_switches_and_keeps_the_previous_file(usable: Lab) -> None:
    ctx = usable.ctx("use", EXAMPLE="small", KEEP="1")
    assert use.run(ctx) == 0
    assert _files(usable.root) == {"infra.yml": EXAMPLE, "infra.yml.before-use": CURRENT}
    assert usable.ran == ["sync_clean {'FORCE': '1'}", "plan {}"]
    assert len(usable.instances()) == 4
    assert ("use: infra.yml is now examples/small/infra.yml (the previous one is kept as "
            "infra.yml.before-use)") in out(ctx)


def test_use_destroy_destroys_first_then_switches(usable: Lab) -> None:
    ctx = usable.ctx("use", EXAMPLE="small", DESTROY="1")
    assert use.run(ctx) == 0
    assert usable.ran == ["destroy {'FORCE': '1'}", "sync_clean {'FORCE': '1'}",
                          "plan {}"]
    assert _files(usable.root) == {"infra.yml": EXAMPLE, "infra.yml.before-use": CURRENT}


def test_a_destroy_that_leaves_instances_does_not_switch(usable: Lab,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(use.playbooks, "destroy", lambda ctx: 0)
    ctx = usable.ctx("use", EXAMPLE="small", DESTROY="1")
    assert use.run(ctx) == 1
    assert "still in Incus after the destroy: t27vb-one, t27vb-two" in err(ctx)
    assert _files(usable.root) == {"infra.yml": CURRENT}


def test_use_with_nothing_in_incus_needs_no_flag(usable: Lab) -> None:
    usable.set({})
    assert use.run(usable.ctx("use", EXAMPLE="small")) == 0
    assert usable.ran == ["sync_clean {'FORCE': '1'}", "plan {}"]


def test_an_earlier_backup_is_never_overwritten(usable: Lab) -> None:
    usable.set({})
    (usable.root / "infra.yml.before-use").write_text("older\n")
    assert use.run(usable.ctx("use", EXAMPLE="small")) == 0
    assert _files(usable.root) == {"infra.yml": EXAMPLE, "infra.yml.before-use": "older\n",
                                   "infra.yml.before-use.1": CURRENT}
    # The same example again: nothing to keep, the tree is rendered and planned again.
    ctx = usable.ctx("use", EXAMPLE="other")
    assert use.run(ctx) == 0
    assert "infra.yml already is examples/other/infra.yml" in out(ctx)
    assert len(_files(usable.root)) == 3


def test_a_current_infra_yml_that_does_not_render_needs_keep(usable: Lab) -> None:
    (usable.root / "infra.yml").write_text("domains: [\n")
    with pytest.raises(InputError, match=r"the current infra\.yml does not render"):
        use.run(usable.ctx("use", EXAMPLE="small"))
    assert use.run(usable.ctx("use", EXAMPLE="small", KEEP="1")) == 0
    assert _files(usable.root)["infra.yml.before-use"] == "domains: [\n"
