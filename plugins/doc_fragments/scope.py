# SPDX-License-Identifier: AGPL-3.0-or-later
"""The declared instances in scope, one list shape for the read-only checks (SCOPE_OPTION in
module_utils/reconcile.py is its argument spec)."""

from __future__ import annotations


class ModuleDocFragment:
    """incus_cluster, incus_vm_support, incus_gpu: each says in its own O(instances)
    description which of them it looks at (its words win over the fragment's)."""

    DOCUMENTATION = r"""
options:
  instances:
    description: The declared instances in scope.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Instance name., type: str, required: true}
      project: {description: Incus project., type: str, default: default}
      type: {description: V(lxc) or V(vm)., type: str, default: lxc}
      target: {description: "Its cluster member, V('') for any.", type: str, default: ''}
"""
