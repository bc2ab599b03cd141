# SPDX-License-Identifier: AGPL-3.0-or-later
"""One plain `python3` call inside an instance that runs state probes (ADR-058).

module_utils/state_probe.py imports nothing from Ansible: it is sent on stdin as a script,
followed by the probes to run, and prints one line of JSON: each probe's drift, in order.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PLUGINS = "ansible_collections.anklume.incus.plugins."
RUNNER = ("\nimport json as _j\n"
          "print(_j.dumps({{'drifts': probe_all(_j.loads({args!r}), INSTANCE_DIGESTS)}}))\n")


def interpreter(task_vars: Mapping[str, Any] | None) -> str:
    """The instance's Python: the task's interpreter unless it is still a template."""
    python = (task_vars or {}).get("ansible_python_interpreter") or "/usr/bin/python3"
    return "/usr/bin/python3" if "{{" in str(python) else str(python)


def probe_script(probes: Sequence[Mapping[str, Any]]) -> str:
    """The script that runs PROBES (checked arguments) and prints their drifts as JSON."""
    with open(str(importlib.import_module(PLUGINS + "module_utils.state_probe").__file__),
              encoding="utf-8") as handle:
        return handle.read() + RUNNER.format(args=json.dumps(list(probes)))


def run_probes(execute: Callable[..., dict[str, Any]], probes: Sequence[Mapping[str, Any]],
               python: str) -> list[list[str]]:
    """Each probe's drift, from one command run through EXECUTE (an action plugin's
    _low_level_execute_command). Raises RuntimeError with the instance's last line."""
    if not probes:
        return []
    answer = execute(f"{python} -", in_data=probe_script(probes).encode())
    try:
        drifts = json.loads(answer["stdout"].strip().splitlines()[-1])["drifts"]
    except (ValueError, KeyError, IndexError, AttributeError):
        last = (answer.get("stderr") or answer.get("stdout") or "no output").strip()
        raise RuntimeError(f"state probe failed (exit {answer.get('rc')}): "
                           f"{last.splitlines()[-1] if last else 'no output'}") from None
    return [list(d) for d in drifts]
