# SPDX-License-Identifier: AGPL-3.0-or-later
"""A role's own files, read on the controller by the action plugins that act for several
roles in one task (state_probe with `roles`, ADR-078; role_arguments, ADR-079;
reconcile_roles, ADR-081)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible import constants as C


def role_folder(loader: Any, role: str) -> Path | None:
    """ROLE's folder, looked up as Ansible does for a plain name: the playbook's roles/,
    then roles_path, then beside the playbook. None for a collection's role or none found."""
    if "." in role:
        return None
    base = Path(loader.get_basedir())
    for folder in (base / "roles", *map(Path, C.DEFAULT_ROLES_PATH), base):
        if (folder / role / "tasks").is_dir():
            return folder / role
    return None


def load_main(loader: Any, folder: Path, empty: Any = None, stem: str = "main") -> Any:
    """FOLDER's main.yml (or main.yaml, or STEM's), trusted as templates as Ansible trusts a
    role's own files; EMPTY ({} unless given) when there is none or it is empty."""
    empty = {} if empty is None else empty
    for name in (f"{stem}.yml", f"{stem}.yaml"):
        if (folder / name).is_file():
            return loader.load_from_file(str(folder / name), trusted_as_template=True) or empty
    return empty


def role_variables(loader: Any, task: Any, folder: Path, task_vars: dict[str, Any],
                   *above: dict[str, Any]) -> dict[str, Any]:
    """The variables the role in FOLDER sees, stacked as Ansible stacks them: its defaults,
    under TASK_VARS, under its vars/main.yml, under each of ABOVE in turn (an import's
    vars, a task's own), under the run's extra vars (-e), which beat everything."""
    manager = task.get_variable_manager()
    extra = dict(manager.extra_vars) if manager is not None else {}
    stacked = {**load_main(loader, folder / "defaults"), **task_vars,
               **load_main(loader, folder / "vars")}
    for layer in above:
        stacked.update(layer)
    return {**stacked, **extra}
