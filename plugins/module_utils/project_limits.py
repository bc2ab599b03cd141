# SPDX-License-Identifier: AGPL-3.0-or-later
"""Incus's refusals of a domain's resource budget, as one line (ADR-086): plain Python.

A domain's ``limits:`` are its project's ``limits.cpu``, ``limits.memory``,
``limits.processes`` and ``limits.disk``. Incus then checks every instance creation and
update against them, and every change of them against the instances. The modules that meet
such a refusal (incus_instance, incus_project) report it with :func:`explain`. The generator
keeps a copy, anklume.limits.explain (tests/unit/test_limits.py pins the two).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The domain's names of its limits, and the project keys they become.
KEYS = ("cpu", "memory", "processes", "disk")
PROJECT_KEYS = tuple(f"limits.{k}" for k in KEYS)

# Incus 6.0 internal/server/project/permissions.go, verbatim but for the quoted values.
_REACHED = re.compile(r'Reached maximum aggregate value "([^"]*)" for "limits\.(\w+)" '
                      r'in project "([^"]*)"')
_NO_KEY = re.compile(r'Instance "([^"]*)" in project "([^"]*)" has no "limits\.(\w+)" config')
_NO_SIZE = re.compile(r'Instance "([^"]*)" in project "([^"]*)" has no "size" config set on '
                      r'the root device')
_TOO_LOW = re.compile(r'"limits\.(\w+)" is too low: current total is "([^"]*)"')
_UNPARSED = re.compile(r'Failed parsing "limits\.(\w+)" for instance "([^"]*)" in project '
                       r'"([^"]*)"')
# Our own step names (incus_instance): which instance a refused creation or update was.
_STEP = re.compile(r"(?:creating|updating) (instance|project) ([^\s:]+)")


def _per_instance(key: str, instance: str) -> str:
    if key == "disk":
        return (f"give machine {instance} a root disk size (devices: {{root: {{type: disk, "
                f"path: /, pool: default, size: \"4GiB\"}}}})")
    return f"give machine {instance} its own limits.{key} (config: {{limits.{key}: ...}})"


def explain(text: str, domain: str | None = None,
            limits: Mapping[str, str] | None = None) -> str | None:
    """One line naming the domain, the limit and the fix for Incus's refusal in TEXT of
    an instance (or a project change) beyond a domain's budget; None for any other text.

    DOMAIN defaults to the project Incus names (a domain's project is its name); LIMITS
    (the domain's ``limits:``) only adds the budget as infra.yml writes it."""
    limits = limits or {}
    found = _REACHED.search(text)
    if found:
        value, key, project = found.groups()
        name = domain or project
        step = _STEP.search(text)
        what = f"instance {step.group(2)}" if step and step.group(1) == "instance" \
            else "an instance"
        budget = limits.get(key, value)
        return (f"domain {name}: {what} does not fit its {key} budget ({key}: {budget}, "
                f"Incus's limits.{key} of project {project}), which its instances already "
                f"use, disposables and hand-made ones included; fix: delete the instances "
                f"infra.yml does not declare (incus list --project {project}), lower "
                f"limits.{key} of its machines, or raise domains.{name}.limits.{key}")
    found = _NO_KEY.search(text) or _NO_SIZE.search(text)
    if found:
        instance, project = found.group(1), found.group(2)
        key = found.group(3) if found.re is _NO_KEY else "disk"
        name = domain or project
        per = "root disk size" if key == "disk" else f"limits.{key}"
        return (f"domain {name}: Incus refuses its {key} budget while instance {instance} "
                f"has no {per} (every instance of a project that limits {key} needs its own)"
                f"; fix: {_per_instance(key, instance)} and apply it with `make apply "
                f"TAGS=instances` before the domain's limits, or delete {instance} if "
                "infra.yml does not declare it")
    found = _TOO_LOW.search(text)
    if found:
        key, total = found.groups()
        step = _STEP.search(text)
        name = domain or (step.group(2) if step and step.group(1) == "project" else "?")
        budget = f" ({key}: {limits[key]})" if key in limits else ""
        return (f"domain {name}: Incus refuses its {key} budget{budget}: its instances "
                f"already use {total}; fix: lower limits.{key} of its machines first "
                "(`make apply TAGS=instances`), then apply the budget, or raise it")
    found = _UNPARSED.search(text)
    if found:
        key, instance, project = found.groups()
        name = domain or project
        return (f"domain {name}: limits.{key} of instance {instance} is not an amount Incus "
                f"can add up (no percentage, no CPU set in a project that limits {key}); fix: "
                f"write a size like \"512MiB\" or a CPU count like \"2\"")
    return None
