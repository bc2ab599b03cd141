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
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
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


def run_in(argv: list[str], script: str) -> tuple[list[list[str]] | None, str]:
    """The drifts a probe script prints as its last line, or None and why not. Any failed
    answer is asked again, a little later: the instance was just seen running, so a failure
    is most likely `incus exec` under load, and the probe only reads."""
    why = "no answer"
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_AFTER)
        proc = subprocess.run(argv, input=script, capture_output=True, text=True,
                              check=False, timeout=300)
        lines = proc.stdout.strip().splitlines()
        try:
            return [list(d) for d in json.loads(lines[-1])["drifts"]], ""
        except (ValueError, KeyError, IndexError, TypeError):
            last = (proc.stderr or proc.stdout).strip().splitlines()
            why = f"exit {proc.returncode}: {last[-1] if last else 'no output'}"
    return None, why


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
        binary = incus.IncusClient(args["remote"]).binary
        probes: dict[str, HostProbe] = {}
        running: dict[str, Future[tuple[list[list[str]] | None, str]] | None] = {}
        with ThreadPoolExecutor(max_workers=max(2, args["parallel"])) as pool:
            # The readiness check (Incus's answers, boot waits) runs while the first host's
            # probe is templated; each host's probe starts as soon as it is templated, while
            # the next host's is.
            readiness = pool.submit(run_module, "incus_ready", args,
                                    bool(self._task.check_mode), False)
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
                argv = [binary, "exec", "--project", spec["project"],
                        f"{args['remote']}:{spec['name']}", "--", probe.python, "-"]
                probes[host] = probe
                running[host] = pool.submit(run_in, argv, probe.script) if probe.script else None
            ready = readiness.result()
        problems.update(ready.get("problems") or {})
        drift: dict[str, Any] = {}
        apply: dict[str, list[str]] = {}
        for host, future in running.items():
            probe = probes[host]
            drifts, why = future.result() if future else ([], "")
            if drifts is None:
                spec = targets[host]
                problems[host] = (f"{host}: state probe failed ({why}): see `incus info "
                                  f"--show-log --project {spec['project']} {spec['name']}`")
                continue
            answer = apply_from(probe.roles, probe.names, drifts)
            drift[host], apply[host] = answer["drift"], answer["apply"]
        due = [host for host in targets if host in problems or apply.get(host)]
        result.update(changed=False, problems=problems, ready=sorted(apply), drift=drift,
                      apply=apply, due=due, probes=ready["probes"],
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
        script = probe_script([params for _role, params in probed]) if probed else ""
        return HostProbe(roles, names, script, interpreter(variables))

    def _variables(self, host: str, task_vars: Mapping[str, Any]) -> dict[str, Any]:
        """HOST's variables as a task of this play sees them: the play's above the host's."""
        play = self._task.get_play()
        return {**{k: task_vars[k] for k in PLAY_MAGIC if k in task_vars},
                **task_vars["hostvars"].raw_get(host), **(play.get_vars() if play else {})}
