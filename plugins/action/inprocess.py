# SPDX-License-Identifier: AGPL-3.0-or-later
"""The action plugin of every anklume Incus module but state_probe: it runs the task's
module in the controller process (plugin_utils/inprocess.py, ADR-013). meta/runtime.yml
routes each module here (`action_plugin`), so no module needs a stub file of its own."""

from __future__ import annotations

from ansible_collections.anklume.incus.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    """The module is the one the task names."""
