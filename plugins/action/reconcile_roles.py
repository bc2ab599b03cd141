# SPDX-License-Identifier: AGPL-3.0-or-later
"""reconcile_roles: several one-task roles run in one task, in the controller (ADR-081).

Each Ansible task costs 10-50 ms of Ansible's own work on this 2-core machine (a forked
worker, its templating, the callbacks), whatever the module does. The infrastructure
play's cluster, ownership, bridge, project, profile and instance roles are each one
in-process module task (ADR-013); this action runs those tasks, in order, as their roles
would, so the play pays one slot for all six:

- the role's task is read from its own tasks/main.yml (one copy; a role that is not
  exactly one anklume.incus module task is refused, so the two ways to run it cannot
  part);
- its arguments are templated with the variables the role would see: its defaults, under
  the task's variables and the task's shared `vars` (templated once), under its
  vars/main.yml, under the entry's `vars` (the play's
  import vars), under the task's own `vars`, under extra vars;
- a role whose `tags` the run does not select (`--tags`, `--skip-tags`, Ansible's rules)
  is left out;
- the first role that fails stops the rest, as a failed task would.

The result adds up the roles': changed if one changed, their `plan` entries, `diff`s and
warnings, and each role's own result under `roles`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.anklume.incus.plugins.module_utils import incus_client as incus
from ansible_collections.anklume.incus.plugins.module_utils.shared_reads import SharedReads
from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args
from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import (
    module_code,
    run_module,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.role_files import (
    load_main,
    role_folder,
    role_variables,
)
from ansible_collections.anklume.incus.plugins.plugin_utils.tags import selected

COLLECTION = "anklume.incus."
TASK_KEYS = {"name", "vars", "run_once"}


def module_task(role: str, tasks: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(module, arguments, task vars) of ROLE's tasks/main.yml, which must be one task of an
    anklume.incus module with nothing but a name, vars and run_once beside it."""
    task = tasks[0] if isinstance(tasks, list) and len(tasks) == 1 else None
    actions = [k for k in task or {} if k not in TASK_KEYS]
    if task is None or len(actions) != 1 or not actions[0].startswith(COLLECTION) \
            or not isinstance(task[actions[0]], dict):
        raise ValueError(f"reconcile_roles: role {role}: tasks/main.yml must be one "
                         f"{COLLECTION}* module task with only {sorted(TASK_KEYS)} beside it "
                         "(run the role on its own instead)")
    return actions[0][len(COLLECTION):], dict(task[actions[0]]), dict(task.get("vars") or {})


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core has no py.typed
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: str | None = None,
            task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        # A bad entry fails here with Ansible's own message (the module file's spec).
        args = checked_args.task_args(self, module_code("reconcile_roles").ARGUMENT_SPEC)
        entries, seen = args["roles"], {**task_vars, **args["vars"]}
        declared = {t for e in entries for t in e.get("tags") or []}
        # The task is tagged `always` (so that --skip-tags of one role skips that role only):
        # a role inherits the play's tags, not that one.
        inherited = set(self._task.tags) - declared - {"always"}
        only = task_vars.get("ansible_run_tags") or ["all"]
        skip = task_vars.get("ansible_skip_tags") or []
        done: dict[str, dict[str, Any]] = {}
        result.update(changed=False, plan=[], roles=done)
        diffs: list[Any] = []
        warnings: list[str] = []
        chosen = [entry for entry in entries
                  if selected(set(entry.get("tags") or []) | inherited, only, skip)]
        # The bulk lists are asked side by side while the roles' arguments are templated
        # (ADR-101); each role is then run in order, and the first that fails (or could not
        # be templated) stops the rest, as a failed task would.
        ahead = read_ahead(task_vars) if chosen else []
        prepared = [self._prepare(entry["role"], seen, dict(entry.get("vars") or {}))
                    for entry in chosen]
        wait_for(ahead)
        try:
            for entry, ready in zip(chosen, prepared, strict=True):
                role = entry["role"]
                if isinstance(ready, Exception):  # at its turn, as when it was templated there
                    raise ready
                done[role] = outcome = ready if "failed" in ready else run_module(
                    ready["module"], ready["params"], bool(self._task.check_mode),
                    bool(self._task.diff))
                result["plan"] += outcome.get("plan") or []
                diffs += _as_list(outcome.get("diff"))
                warnings += outcome.get("warnings") or []
                result["changed"] = result["changed"] or bool(outcome.get("changed"))
                if outcome.get("failed"):
                    result.update(failed=True, msg=outcome.get("msg") or f"{role} failed")
                    break
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
        if not done and not result.get("failed"):
            result.update(skipped=True, msg="no role here is selected by the run's tags")
        if diffs:
            result["diff"] = diffs
        if warnings:
            result["warnings"] = warnings
        return result

    def _prepare(self, role: str, task_vars: dict[str, Any],
                 entry_vars: dict[str, Any]) -> dict[str, Any] | Exception:
        """ROLE's module and checked arguments ({"module", "params"}), its failed result
        when they do not check, or the error that says its role cannot run this way or
        that its arguments cannot be templated."""
        folder = role_folder(self._loader, role)
        if folder is None:
            return ValueError(f"reconcile_roles: no role {role} in the roles folders")
        try:
            name, raw, own_vars = module_task(role, load_main(self._loader, folder / "tasks",
                                                              empty=[]))
        except ValueError as exc:
            return exc
        variables = role_variables(self._loader, self._task, folder, task_vars, entry_vars,
                                   own_vars)
        templar = self._templar.copy_with_new_env(available_variables=variables)
        try:
            templated = templar.template(raw)
        except AnsibleError as exc:
            failed: Exception = exc  # Ansible's error, raised at the role's turn
            return failed
        checked = checked_args.validate(module_code(name).ARGUMENT_SPEC, templated)
        if checked.error_messages:
            return {"failed": True, "msg": f"{role} ({COLLECTION}{name}): "
                                           + "; ".join(checked.error_messages)}
        return {"module": name, "params": checked.validated_parameters}


def read_ahead(task_vars: Mapping[str, Any]) -> list[Future[Any]]:
    """The bulk lists a no-op reads (the server, bridges, projects, profiles, instances
    without their state), asked of Incus side by side in the background, into the run's
    shared reads (ADR-077) where the roles' modules find them; none without that folder or
    for a remote still to be templated."""
    remote = str(task_vars.get("anklume_incus_remote") or "local")
    if SharedReads.of_run() is None or "{" in remote:
        return []
    client = incus.IncusClient(remote)
    reads: list[Callable[[], Any]] = [
        partial(client.get, "/1.0"), client.networks, client.projects, client.profiles,
        partial(client.instances, state=False)]
    pool = ThreadPoolExecutor(max_workers=len(reads))
    started = [pool.submit(read) for read in reads]
    pool.shutdown(wait=False)  # the reads go on; the pool takes no more
    return started


def wait_for(reads: list[Future[Any]]) -> None:
    """The reads ahead, finished. Whatever went wrong is left to the module that needs the
    list: it reads it again and says so in its own words."""
    for read in reads:
        with contextlib.suppress(Exception):
            read.result()


def _as_list(diff: Any) -> list[Any]:
    if not diff:
        return []
    return list(diff) if isinstance(diff, list) else [diff]
