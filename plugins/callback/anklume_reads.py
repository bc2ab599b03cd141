# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402
"""Give one playbook run a folder where its tasks share the Incus bulk reads (ADR-077).

Sets ``ANKLUME_SHARED_READS`` when the playbook starts, so every task's worker inherits it
(module_utils/shared_reads.py says what is shared and when sharing ends), and removes the
folder when the run ends; the folder of an earlier run that was interrupted goes at the
next start. Prints nothing.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: anklume_reads
type: aggregate
short_description: Share the Incus bulk reads between the tasks of one playbook run
description:
  - When the playbook starts, creates a private folder and names it in the environment
    variable C(ANKLUME_SHARED_READS), which every task's worker inherits; the anklume
    modules keep and reuse their bulk reads of Incus there until the first write of the
    run. Removes the folder when the run ends. Prints nothing.
requirements: []
author: AnKLuMe contributors (!UNKNOWN)
"""

import glob
import os
import shutil
import tempfile
from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible_collections.anklume.incus.plugins.module_utils.shared_reads import ENV

PREFIX = "anklume-reads."


def _remove_leftovers() -> None:
    """The folders of earlier runs that ended without their last callback (interrupted,
    killed): named by their playbook's pid, removed once that process is gone."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{PREFIX}*.*")):
        pid = os.path.basename(path)[len(PREFIX):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core has no py.typed
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "anklume_reads"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.folder = ""

    def v2_playbook_on_start(self, playbook: Any) -> None:
        _remove_leftovers()
        self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}.")
        os.environ[ENV] = self.folder

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self.folder:
            os.environ.pop(ENV, None)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""
