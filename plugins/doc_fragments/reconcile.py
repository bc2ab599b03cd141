# SPDX-License-Identifier: AGPL-3.0-or-later
"""The options every object module shares (ADR-056); its attributes and O(remote) come
from the change fragment, named beside this one."""

from __future__ import annotations


class ModuleDocFragment:
    """incus_network, incus_project, incus_profile, incus_instance: a module names its list of
    objects and may override a description below (its own words win over the fragment's)."""

    DOCUMENTATION = r"""
notes:
  - Objects without the C(user.anklume.managed) marker are never modified or deleted; a
    declared one is left alone and reported as V(foreign).
  - A declared object that carries the marker with another O(owner) (another anklume
    project) fails the task before anything is written (ADR-021).
  - Every result carries a RV(plan) list (ADR-056), one entry per object acted on or
    reported, C({kind, name, action}) plus C(project) (objects in a project), C(keys) (what
    a change touches) and C(reason) (a conflict's one line).
options:
  declared:
    description: Every object of the kind the whole infra declares; with O(report_orphans),
      the managed ones outside it are orphans.
    type: list
    elements: str
    default: []
  report_orphans: {description: Compute orphans., type: bool, default: false}
  owner:
    description: anklume project name written in C(user.anklume.owner).
    type: str
    default: ""
  state:
    description: V(present) reconciles, V(absent) deletes the listed objects, V(pruned)
      deletes orphans.
    type: str
    choices: [present, absent, pruned]
    default: present
"""
