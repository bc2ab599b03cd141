# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402
"""Load, once in the controller, what every task's worker would load again (ADR-076).

Ansible runs each task in a worker process forked from the controller. What the
controller has not loaded before the fork, each worker loads for itself and forgets:
Jinja's lexer (about 10 ms), our connection plugin and its documented options (about
40 ms), the action, filter and module files a task names. On a no-op apply of the shipped
lab that was about 1 s of the 4.3 s the playbook took. This callback loads them when the
playbook starts, so every worker inherits them. It changes no result and prints nothing.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: anklume_warm
type: aggregate
short_description: Load the plugins and the template lexer before Ansible forks its workers
description:
  - When the playbook starts, loads Jinja's lexer, the anklume.incus action, connection,
    filter and module files and the builtin actions our plays use, so that the worker
    process of each task inherits them instead of loading them again. Prints nothing.
  - Also keeps the code compiled from each template text in C(.cache/anklume/templates)
    beside the playbook, for the next run to load instead of compiling it again (ADR-100).
requirements: []
author: AnKLuMe contributors (!UNKNOWN)
"""

import importlib
import os
import pkgutil
from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import action_loader, connection_loader, filter_loader, test_loader
from ansible_collections.anklume.incus.plugins.plugin_utils import template_cache

COLLECTION = "ansible_collections.anklume.incus.plugins"
CONNECTIONS = ("anklume.incus.anklume_incus", "ansible.builtin.local")
ACTIONS = ("anklume.incus.inprocess", "anklume.incus.state_probe",
           "anklume.incus.reconcile_roles", "anklume.incus.role_arguments",
           "anklume.incus.provision_check", "ansible.builtin.normal",
           "ansible.builtin.command", "ansible.builtin.set_fact", "ansible.builtin.debug",
           "ansible.builtin.fail", "ansible.builtin.assert",
           "ansible.builtin.validate_argument_spec")


def warm_lexer() -> None:
    """Compile one template: Jinja builds its lexer once per process and keeps it."""
    try:
        from ansible.template import Templar, trust_as_template
    except ImportError:  # ansible-core < 2.19: no data tagging, a cheaper lexer
        return
    Templar().template(trust_as_template("{{ [0] | length > 0 }}"))


def warm_plugins() -> None:
    for name in CONNECTIONS:
        connection_loader.get(name, class_only=True)
    for name in ACTIONS:
        action_loader.get(name, class_only=True)
    # The builtin filter and test files, then ours, through the loaders' own caches.
    for loader in (filter_loader, test_loader):
        list(loader.all())
    for module in _collection_modules("filter"):
        for name in module.FilterModule().filters():
            filter_loader.get(f"anklume.incus.{name}")
    # The in-process action plugin imports the module a task names (ADR-013).
    _collection_modules("modules")


def _collection_modules(kind: str) -> list[Any]:
    """Every Python file of the collection's plugins/KIND, imported."""
    package = importlib.import_module(f"{COLLECTION}.{kind}")
    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__)]


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core has no py.typed
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "anklume_warm"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook: Any) -> None:
        # ADR-100: the code compiled from each template text is kept beside the playbook
        # (.cache/anklume/templates) and loaded by the next run's workers.
        basedir = getattr(playbook, "_basedir", "") or os.getcwd()
        template_cache.install(os.path.join(basedir, ".cache", "anklume", "templates"))
        warm_lexer()
        warm_plugins()
