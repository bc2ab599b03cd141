# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run the anklume_nftables module in the controller process (plugin_utils/inprocess.py)."""

from __future__ import annotations

from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "anklume_nftables"
