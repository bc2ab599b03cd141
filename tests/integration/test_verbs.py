"""The everyday verbs on the real Incus: shell, exec, logs, start, stop, restart, delete, use.

One lab (owner ``t27verbs``, domains ``t27va`` and ``t27vb`` with two containers each,
``t27va-one`` protected, 10.126.x.0/24, nft table ``anklumet27``) is applied once in a temp
tree that carries an ``examples/`` folder of its own (``t27vx``, ``t27vy``: owner
``t27vex``, 10.126.9.0/24, never applied). Every assertion reads Incus's state before and
after: a verb touches exactly the instances it names, a refusal exits 2 in one line and
touches nothing. The `make use` test comes last: its DESTROY=1 destroys the lab.

Own lab: its tree carries an examples/ folder (t27vx, t27vy) that make use reads, its tests
stop, restart, delete and re-create instances, and the last one, make use DESTROY=1, destroys
the lab, so no other module could share it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.incus_helpers import lab_tree, run
from tests.integration.reconcile_lab import all_instances, cleanup, incus_query

OWNER = "t27verbs"
PREFIX = "t27v"
BASE = "10.126"
TABLE = "anklumet27"
EVERY = ("t27va-one", "t27va-two", "t27vb-one", "t27vb-two")


def description() -> dict[str, Any]:
    def box(n: int, d: int, **extra: Any) -> dict[str, Any]:
        return {"type": "lxc", "ip": f"{BASE}.{d}.{n}", **extra}

    return {
        "project_name": OWNER,
        "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12",
                   "default_user": "root",
                   "admin_domain": "t27va"},
        "domains": {
            "t27va": {"subnet_id": 1, "ephemeral": True, "machines": {
                "t27va-one": box(10, 1, ephemeral=False), "t27va-two": box(11, 1)}},
            "t27vb": {"subnet_id": 2, "ephemeral": True, "machines": {
                "t27vb-one": box(10, 2), "t27vb-two": box(11, 2)}},
        },
    }


EXAMPLE = {
    "project_name": "t27vex",
    "global": {"base_subnet": BASE, "default_os_image": "anklume/debian-12"},
    "domains": {"t27vx": {"subnet_id": 9, "ephemeral": True, "machines": {
        "t27vx-box": {"type": "lxc", "ip": f"{BASE}.9.10"}}}},
}


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = lab_tree(root)

    def make(self, *args: str, rc: int | None = 0, timeout: float = 300
             ) -> tuple[int, str, str]:
        """make ARGS in the lab, stdin empty: (exit status, stdout, stderr)."""
        proc = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=self.root,
            input="", capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"})
        if rc is not None:
            assert proc.returncode == rc, (f"make {' '.join(args)} exited {proc.returncode}, "
                                           f"want {rc}:\n{proc.stdout}\n{proc.stderr}")
        return proc.returncode, proc.stdout, proc.stderr

    def write(self, doc: dict[str, Any]) -> None:
        (self.root / "infra.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def sync(self) -> None:
        self.make("sync")
        allvars = self.root / "group_vars" / "all.yml"
        text = allvars.read_text()
        if "incus_nftables_table" not in text:  # outside the managed section, kept by sync
            allvars.write_text(text + f"incus_nftables_table: {TABLE}\n")

    def files(self) -> dict[str, str]:
        """A digest of infra.yml and every generated file: what a refusal must not touch."""
        out = {}
        for top, dirs, names in os.walk(self.root):  # links (the repository's) not followed
            dirs[:] = [d for d in dirs if not (Path(top) / d).is_symlink()]
            for name in names:
                path = Path(top) / name
                if not path.is_symlink():
                    out[str(path.relative_to(self.root))] = hashlib.sha256(
                        path.read_bytes()).hexdigest()
        return out


def state() -> dict[str, tuple[str, int]]:
    """Our instances: name -> (status, init PID): a restart changes the PID."""
    return {name: (str(i["status"]), int((i.get("state") or {}).get("pid") or 0))
            for (project, name), i in all_instances().items() if project.startswith(PREFIX)}


def config(name: str) -> dict[str, str]:
    project = name.split("-")[0]
    got: dict[str, str] = incus_query(f"/1.0/instances/{name}?project={project}")["config"]
    return got


@pytest.fixture(scope="module")
def lab(incus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cleanup(PREFIX, TABLE)
    lab = Lab(tmp_path_factory.mktemp("t27verbs"))
    for name in ("t27vx", "t27vy"):
        folder = lab.root / "examples" / name
        folder.mkdir(parents=True)
        (folder / "infra.yml").write_text(yaml.safe_dump(EXAMPLE, sort_keys=False))
    try:
        lab.write(description())
        lab.sync()
        lab.make("apply", timeout=600)
        assert {n: s for n, (s, _) in state().items()} == dict.fromkeys(EVERY, "Running")
        yield lab
    finally:
        cleanup(PREFIX, TABLE)


def test_stop_and_start_touch_exactly_the_instances_in_scope(lab: Lab) -> None:
    before = state()
    _, out, _ = lab.make("stop", "DOMAIN=t27vb")
    after = state()
    assert {n: s for n, (s, _) in after.items()} == {
        "t27va-one": "Running", "t27va-two": "Running",
        "t27vb-one": "Stopped", "t27vb-two": "Stopped"}
    assert {n: after[n] for n in ("t27va-one", "t27va-two")} == {
        n: before[n] for n in ("t27va-one", "t27va-two")}
    assert sorted(out.splitlines()) == ["stop t27vb-one (t27vb): stopped",
                                        "stop t27vb-two (t27vb): stopped", "stop: 2 stopped"]
    _, out, _ = lab.make("stop", "DOMAIN=t27vb")
    assert out.splitlines()[-1] == "stop: 2 already stopped"
    _, out, _ = lab.make("start", "I=t27vb-one")
    assert out.splitlines() == ["start t27vb-one (t27vb): started", "start: 1 started"]
    mid = state()
    assert mid["t27vb-two"][0] == "Stopped"
    assert all(mid[n] == after[n] for n in ("t27va-one", "t27va-two"))
    _, out, _ = lab.make("start", "PARALLEL=1")  # no scope: every declared instance
    assert out.splitlines()[-1] == "start: 3 already running, 1 started"
    final = state()
    assert {n: s for n, (s, _) in final.items()} == dict.fromkeys(EVERY, "Running")
    assert all(final[n] == mid[n] for n in ("t27va-one", "t27va-two", "t27vb-one"))


def test_restart_touches_exactly_the_instances_named(lab: Lab) -> None:
    before = state()
    _, out, _ = lab.make("restart", "I=t27va-two,t27vb-one")
    after = state()
    assert out.splitlines()[-1] == "restart: 2 restarted"
    for name in EVERY:
        assert after[name][0] == "Running"
        changed = after[name][1] != before[name][1]
        assert changed == (name in ("t27va-two", "t27vb-one")), name


def test_exec_fails_with_the_command_status_and_prints_its_output(lab: Lab) -> None:
    command = 'cat /etc/hostname; echo "$0"; exit 3'
    _, out, err = lab.make("exec", "I=t27va-two", f"CMD={command}", rc=2)
    assert out.splitlines() == ["t27va-two", "sh"]
    assert f"exec: `{command}` exited with status 3 in t27va-two" in err
    assert "Error 3" in err  # make's own line: the recipe failed with the command's status
    env = {**os.environ, "I": "t27vb-one", "CMD": "exit 42"}
    runner = subprocess.run([str(lab.root / ".venv" / "bin" / "python"), "scripts/ops.py",
                             "exec"], cwd=lab.root, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert runner.returncode == 42, runner.stderr
    _, out, _ = lab.make("exec", "I=t27vb-one", "CMD=echo $HOME '$1' | tr a-z A-Z")
    assert out == "/ROOT $1\n"


def test_shell_is_an_interactive_login_shell_in_the_instance(lab: Lab) -> None:
    line = "make --no-print-directory -o .venv/.installed shell I=t27vb-two"
    proc = subprocess.run(["script", "-qec", line, "/dev/null"], cwd=lab.root,
                          input="echo marker-$((6*7)) $(shopt -q login_shell && echo login) "
                                "$(cat /etc/hostname)\nexit\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "marker-42 login t27vb-two" in proc.stdout.replace("\r", ""), proc.stdout


def test_logs_prints_the_console_and_the_instance_log(lab: Lab) -> None:
    _, out, _ = lab.make("logs", "I=t27va-two")
    heads = [ln for ln in out.splitlines() if ln.startswith("== ")]
    assert len(heads) == 2, out
    assert heads[0].startswith("== console log of t27va-two (") and "not available" not in \
        heads[0]
    assert heads[1] == "== instance log of t27va-two (incus info --show-log)"
    assert "Debian GNU/Linux 12" in out  # the boot banner on its console
    assert "lxc t27va_t27va-two" in out  # a line of its lxc.log


@pytest.mark.parametrize("args", [
    ("delete", "I=t27va-two,t27vb-two"),
    ("delete", "I=t27va-*"),
    ("delete", "I=t27va"),
    ("delete", "I=t27va-one"),  # protected, no FORCE
    ("delete",),
    ("shell", "I=t27va-one,t27va-two"),
    ("exec", "I=t27va-one"),
    ("logs", "I=nope"),
    ("stop", "DOMAIN=t27va", "I=t27vb-one"),
    ("stop", "DOMAIN=nope"),
    ("restart", "PARALLEL=0"),
    ("start", "FORCE=1"),
    ("use", "EXAMPLE=nope"),
    ("use", "EXAMPLE=t27vx"),  # the lab's instances exist
    ("use", "EXAMPLE=t27vx", "KEEP=1", "DESTROY=1"),
], ids=lambda a: "-".join(a))
def test_a_refused_combination_exits_2_in_one_line_and_touches_nothing(
        lab: Lab, args: tuple[str, ...]) -> None:
    before, files = state(), lab.files()
    _, out, err = lab.make(*args, rc=2)
    ours = [ln for ln in err.splitlines() if not ln.startswith("make: ***")]
    assert len(ours) == 1 and ours[0].startswith(f"make {args[0]}: "), err
    assert out == ""
    assert state() == before
    assert lab.files() == files


def test_the_unknown_example_line_lists_the_examples(lab: Lab) -> None:
    _, _, err = lab.make("use", "EXAMPLE=nope", rc=2)
    assert err.splitlines()[0] == "make use: EXAMPLE=nope is no example; examples: t27vx, t27vy"


@pytest.mark.parametrize(("key", "value", "why"), [
    ("user.anklume.owner", "t27vother", "it belongs to anklume project 't27vother'"),
    ("user.anklume.managed", "false", "it has no user.anklume.managed=true marker"),
])
def test_delete_refuses_an_instance_this_tree_did_not_make(lab: Lab, key: str, value: str,
                                                           why: str) -> None:
    was = config("t27vb-one")[key]
    run(["incus", "config", "set", "--project", "t27vb", "t27vb-one", f"{key}={value}"])
    try:
        before = state()
        for force in ("FORCE=0", "FORCE=1"):
            _, _, err = lab.make("delete", "I=t27vb-one", force, rc=2)
            assert why in err, err
        assert state() == before
    finally:
        run(["incus", "config", "set", "--project", "t27vb", "t27vb-one", f"{key}={was}"])


def test_delete_removes_exactly_one_instance_and_apply_recreates_it(lab: Lab) -> None:
    before = state()
    _, out, _ = lab.make("delete", "I=t27vb-two")
    assert set(state()) == set(EVERY) - {"t27vb-two"}
    assert ("delete: infra.yml still declares t27vb-two: the next make apply creates it again"
            in out)
    assert config("t27va-one")["security.protection.delete"] == "true"
    _, out, _ = lab.make("delete", "I=t27va-one", "FORCE=1")
    assert "deleted, its protection lifted first" in out
    after = state()
    assert set(after) == {"t27va-two", "t27vb-one"}
    assert all(after[n] == before[n] for n in after)
    # The projects, bridges and profiles stay: only the instances went.
    for project in ("t27va", "t27vb"):
        assert incus_query(f"/1.0/projects/{project}")["name"] == project
        assert incus_query(f"/1.0/networks/net-{project}")["name"] == f"net-{project}"
    lab.make("apply", "I=t27va-one", timeout=600)
    assert {n: s for n, (s, _) in state().items()} == dict.fromkeys(
        set(EVERY) - {"t27vb-two"}, "Running")
    assert config("t27va-one")["security.protection.delete"] == "true"


def test_use_keep_then_use_destroy(lab: Lab) -> None:
    """Last: the lab is destroyed by its DESTROY=1."""
    infra = (lab.root / "infra.yml").read_text()
    example = (lab.root / "examples" / "t27vx" / "infra.yml").read_text()
    before = state()
    _, out, _ = lab.make("use", "EXAMPLE=t27vx", "KEEP=1")
    assert ("use: infra.yml is now examples/t27vx/infra.yml (the previous one is kept as "
            "infra.yml.before-use)") in out
    assert "+ instance t27vx-box" in out, out  # the plan of the example
    assert (lab.root / "infra.yml").read_text() == example
    assert (lab.root / "infra.yml.before-use").read_text() == infra
    assert {n: s for n, (s, _) in state().items()} == {n: s for n, (s, _) in before.items()}
    assert not (lab.root / "host_vars" / "t27va-one.yml").exists()  # the old tree's files
    assert (lab.root / "host_vars" / "t27vx-box.yml").exists()
    # Back to the lab's description, whose instances still exist: DESTROY=1 deletes them.
    (lab.root / "infra.yml").write_text(infra)
    lab.sync()
    _, out, _ = lab.make("use", "EXAMPLE=t27vx", "DESTROY=1", timeout=600)
    assert "use: destroying what the current infra.yml declares (3 instance(s)" in out
    assert state() == {}  # the protected t27va-one too
    for project in ("t27va", "t27vb"):
        assert incus_query("/1.0/projects?recursion=0").count(f"/1.0/projects/{project}") == 0
    assert (lab.root / "infra.yml").read_text() == example
    assert (lab.root / "infra.yml.before-use").read_text() == infra
    assert "+ instance t27vx-box" in out
    assert not any(p.startswith("t27vx") for p, _ in all_instances())  # planned, not applied
