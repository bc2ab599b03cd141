# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run the incus_ready module in the controller process (see _incus_inprocess.py)."""

from __future__ import annotations

import importlib.util
import os

_SPEC = importlib.util.spec_from_file_location(
    "anklume_incus_inprocess",
    os.path.join(os.path.dirname(os.path.realpath(__file__)), "_incus_inprocess.py"),
)
_BASE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BASE)


class ActionModule(_BASE.InProcessAction):
    MODULE = "incus_ready"
