# SPDX-License-Identifier: AGPL-3.0-or-later
"""The state probe each role starts with (ADR-058), read from the role and templated as the
role would see it, and the roles that must then run (ADR-078). Shared by state_probe's
`roles` (one host per task) and provision_check (every host in one task, ADR-082)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.anklume.incus.plugins.plugin_utils import checked_args
from ansible_collections.anklume.incus.plugins.plugin_utils.role_files import (
    load_main,
    role_folder,
    role_variables,
)

PROBE_ACTIONS = ("anklume.incus.state_probe", "state_probe")


class RoleProbes:
    """Each role's probe for one host's variables. LOADER, TASK and TEMPLAR are the calling
    action plugin's; SPEC is state_probe's argument spec, against which each probe is
    checked as its own task would be."""

    def __init__(self, loader: Any, task: Any, templar: Any, spec: Mapping[str, Any]) -> None:
        self._loader = loader
        self._task = task
        self._templar = templar
        self._spec = {k: v for k, v in spec.items() if k != "roles"}

    def probes(self, roles: Sequence[str],
               variables: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(role, checked probe arguments) for ROLES in order, up to the first one without a
        probe of its own. Raises ValueError naming the role whose probe is wrong."""
        probed: list[tuple[str, dict[str, Any]]] = []
        for role in roles:
            raw = self._raw(role, variables)
            if raw is None:
                break
            checked = checked_args.validate(self._spec, raw)
            if checked.error_messages:
                raise ValueError(f"role {role}: its state probe: {checked.error_messages[0]}")
            probed.append((role, checked.validated_parameters))
        return probed

    def _raw(self, role: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """ROLE's probe arguments, templated as the role would; None when the role does not
        start with one, is not a plain role of a roles folder, or depends on other roles
        (meta/main.yml): those run with it, and its probe does not read their state."""
        folder = role_folder(self._loader, role)
        if folder is None or load_main(self._loader, folder / "meta").get("dependencies"):
            return None
        tasks = load_main(self._loader, folder / "tasks", empty=[])
        first = tasks[0] if isinstance(tasks, list) and tasks else {}
        action = next((a for a in PROBE_ACTIONS if a in first), None)
        if action is None or "when" in first or not isinstance(first[action], dict):
            return None
        stacked = role_variables(self._loader, self._task, folder, variables)
        templar = self._templar.copy_with_new_env(available_variables=stacked)
        return dict(templar.template(first[action]))


def apply_from(roles: Sequence[str], names: Sequence[str],
               drifts: Sequence[list[str]]) -> dict[str, Any]:
    """`drift` per probed role (NAMES, in order, with DRIFTS) and `apply`: ROLES from the
    first one that drifted or has no probe of its own, in order (a role may build on what an
    earlier one converged, so every role after it runs and probes itself)."""
    drift = dict(zip(names, drifts, strict=True))
    first = next((i for i, role in enumerate(names) if drift[role]), len(names))
    return {"drift": drift, "apply": list(roles[first:])}
