# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402
"""Give one playbook run a folder where its tasks share the Incus bulk reads (ADR-077).

Sets ``ANKLUME_SHARED_READS`` when the playbook starts, so every task's worker inherits it
(module_utils/shared_reads.py says what is shared and when sharing ends), and removes the
folder when the run ends. Prints nothing.
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

import os
import shutil
import tempfile
from typing import Any

from ansible.plugins.callback import CallbackBase

ENV = "ANKLUME_SHARED_READS"


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core has no py.typed
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "anklume_reads"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.folder = ""

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self.folder = tempfile.mkdtemp(prefix="anklume-reads.")
        os.environ[ENV] = self.folder

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self.folder:
            os.environ.pop(ENV, None)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""
