# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run the module of this file's name in the controller process (plugin_utils/inprocess.py)."""

from __future__ import annotations

from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    """The module is named after this file (ADR-013)."""
