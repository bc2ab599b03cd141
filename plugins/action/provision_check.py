# SPDX-License-Identifier: AGPL-3.0-or-later
"""provision_check: the provision play's first task, for every host at once (ADR-082).

incus_ready's check (is each instance declared, running and booted), then, for every ready
host, the state probe of each of its roles (ADR-078), templated here with that host's
variables and run in the instance as one plain `python3 -`, the hosts side by side. A host
then costs no task of its own until a role has something to do.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils import incus_socket
from ansible_collections.anklume.incus.plugins.module_utils.state_probe import (
    read_record,
    write_record,
)
from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args
from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import (
    module_code,
    run_module,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.probe_exec import (
    interpreter,
    probe_script,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.role_probe import (
    RoleProbes,
    apply_from,
)

# A probe's answer that fails (lost or cut by `incus exec`, ADR-046, or an Incus error
# under load) is asked again this many times in all, this long apart: the probe only reads.
ATTEMPTS = 5
RETRY_AFTER = 0.3
# The play's own variables a role's probe may read, besides the host's.
PLAY_MAGIC = ("ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_batch",
              "ansible_play_name", "ansible_run_tags", "ansible_skip_tags",
              "ansible_check_mode", "ansible_diff_mode", "ansible_config_file")


class HostProbe(NamedTuple):
    roles: list[str]  # the host's roles, in order
    names: list[str]  # those whose probes run: up to the first without one
    script: str  # the script that runs them ("" when none does)
    python: str  # the instance's Python
    params: list[Any]  # their checked arguments, as the script carries them


def run_in(ask: Callable[[], tuple[int, str, str]],
           attempts: int = ATTEMPTS) -> tuple[list[list[str]] | None, str]:
    """The drifts a probe prints as its last line (ASK runs it: exit code, stdout, stderr),
    or None and why not. Any failed answer is asked again, a little later: the instance was
    just seen running, so a failure is most likely `incus exec` or Incus under load, and
    the probe only reads."""
    why = "no answer"
    for attempt in range(attempts):
        if attempt:
            time.sleep(RETRY_AFTER)
        try:
            code, out, err = ask()
        except incus_socket.CallError as exc:
            why = str(exc)
            continue
        lines = out.strip().splitlines()
        try:
            return [list(d) for d in json.loads(lines[-1])["drifts"]], ""
        except (ValueError, KeyError, IndexError, TypeError):
            last = (err or out).strip().splitlines()
            why = f"exit {code}: {last[-1] if last else 'no output'}"
    return None, why


def asker(client: incus.IncusClient, project: str, name: str, python: str,
          script: str) -> Callable[[], tuple[int, str, str]]:
    """How the probe is run: the local Incus over its socket, its output recorded (no
    client process, ADR-099); a remote through `incus exec`, the script on stdin."""
    if client.socket:
        return partial(incus_socket.run_recorded, client.socket, name, project,
                       [python, "-c", script])
    argv = [client.binary, "exec", "--project", project, f"{client.remote}:{name}", "--",
            python, "-"]

    def through_client() -> tuple[int, str, str]:
        proc = subprocess.run(argv, input=script, capture_output=True, text=True,
                              check=False, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr
    return through_client


class Early(NamedTuple):
    params: str  # the last run's probe arguments (canonical JSON)
    python: str
    answer: Future[tuple[list[list[str]] | None, str]]


class Running(NamedTuple):
    answer: Future[tuple[list[list[str]] | None, str]]
    ask: Callable[[], tuple[int, str, str]]  # the probe as templated in this run
    early: bool  # started from the last run's arguments (asked once)


def start_kept(pool: ThreadPoolExecutor, client: incus.IncusClient, spec: Mapping[str, Any],
               kept: Any) -> Early | None:
    """The probe this host ran last time, started now: once, since the instance is not yet
    known to be ready (a failure only means the probe is run again as templated)."""
    if not isinstance(kept, dict) or (kept.get("project"), kept.get("name")) != (
            spec["project"], spec["name"]) or not kept.get("params"):
        return None
    python = str(kept.get("python") or "")
    ask = asker(client, spec["project"], spec["name"], python, probe_script(kept["params"]))
    return Early(canonical(kept["params"]), python, pool.submit(run_in, ask, 1))


def canonical(params: Any) -> str:
    return json.dumps(params, sort_keys=True)


def keep_probed(path: str, kept: dict[str, Any], targets: Mapping[str, Mapping[str, Any]],
                probes: Mapping[str, HostProbe]) -> None:
    """Keep each probed host's arguments for the next run's early start (the other hosts'
    entries stay: a --limit run keeps the rest); the file is written only when it changed."""
    now = {**kept, **{host: {"project": targets[host]["project"], "name": targets[host]["name"],
                             "python": probe.python, "params": probe.params}
                      for host, probe in probes.items() if probe.script}}
    if canonical(now) != canonical(kept):
        write_record(path, now)


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = checked_args.task_args(self, module_code("provision_check").ARGUMENT_SPEC)
        problems: dict[str, str] = {}
        targets = {spec["host"]: spec for spec in args["instances"]}
        role_probes = RoleProbes(self._loader, self._task, self._templar,
                                 module_code("state_probe").ARGUMENT_SPEC)
        client = incus.IncusClient(args["remote"])
        probes: dict[str, HostProbe] = {}
        running: dict[str, Running] = {}
        kept = read_record(args["probed"]) if args["probed"] else {}
        with ThreadPoolExecutor(max_workers=max(2, args["parallel"])) as pool:
            # The readiness check (Incus's answers, boot waits) runs while the first host's
            # probe is templated; each host's probe starts as soon as it is templated, while
            # the next host's is. Before that, each host's probe of the last run starts
            # again (ADR-099): its answer stands if the probe templated now is the same.
            readiness = pool.submit(run_module, "incus_ready",
                                    {k: v for k, v in args.items() if k != "probed"},
                                    bool(self._task.check_mode), False)
            early = {host: started for host, spec in targets.items()
                     if (started := start_kept(pool, client, spec, kept.get(host)))}
            for host, spec in targets.items():
                probe = self._templated(host, task_vars, role_probes)
                ready = readiness.result()
                if ready.get("failed"):
                    result.update(ready)
                    return result
                if host in ready["problems"]:
                    continue
                if isinstance(probe, str):
                    problems[host] = probe
                    continue
                probes[host] = probe
                if not probe.script:
                    continue
                ask = asker(client, spec["project"], spec["name"], probe.python, probe.script)
                same = early.get(host)
                if same and (same.params, same.python) == (canonical(probe.params), probe.python) \
                        and host not in ready.get("booting", []):
                    running[host] = Running(same.answer, ask, True)
                else:
                    running[host] = Running(pool.submit(run_in, ask), ask, False)
            ready = readiness.result()
        problems.update(ready.get("problems") or {})
        drift: dict[str, Any] = {}
        apply: dict[str, list[str]] = {}
        reused = 0
        for host, probe in probes.items():
            drifts: list[list[str]] | None = []
            why = ""
            if host in running:
                drifts, why = running[host].answer.result()
                if running[host].early:
                    reused += drifts is not None
                    if drifts is None:  # the early start failed: ask as the template says
                        drifts, why = run_in(running[host].ask)
            if drifts is None:
                spec = targets[host]
                problems[host] = (f"{host}: state probe failed ({why}): see `incus info "
                                  f"--show-log --project {spec['project']} {spec['name']}`")
                continue
            answer = apply_from(probe.roles, probe.names, drifts)
            drift[host], apply[host] = answer["drift"], answer["apply"]
        if args["probed"]:
            keep_probed(args["probed"], kept, targets, probes)
        due = [host for host in targets if host in problems or apply.get(host)]
        result.update(changed=False, problems=problems, ready=sorted(apply), drift=drift,
                      apply=apply, due=due, probes=ready["probes"], early=reused,
                      incus_calls=ready.get("incus_calls"))
        return result

    def _templated(self, host: str, task_vars: Mapping[str, Any],
                   role_probes: RoleProbes) -> HostProbe | str:
        """HOST's probe, or the one line that says why it cannot be templated."""
        variables = self._variables(host, task_vars)
        try:
            roles = list(self._templar.copy_with_new_env(available_variables=variables)
                         .template(variables.get("instance_roles") or []))
            probed = role_probes.probes(roles, variables)
        except (AnsibleError, ValueError) as exc:
            return f"{host}: {exc}"
        names = [role for role, _params in probed]
        params = [params for _role, params in probed]
        script = probe_script(params) if params else ""
        return HostProbe(roles, names, script, interpreter(variables), params)

    def _variables(self, host: str, task_vars: Mapping[str, Any]) -> dict[str, Any]:
        """HOST's variables as a task of this play sees them: the play's above the host's."""
        play = self._task.get_play()
        return {**{k: task_vars[k] for k in PLAY_MAGIC if k in task_vars},
                **task_vars["hostvars"].raw_get(host), **(play.get_vars() if play else {})}
