# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run the incus_instance module in the controller process (plugin_utils/inprocess.py)."""

from __future__ import annotations

from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "incus_instance"
