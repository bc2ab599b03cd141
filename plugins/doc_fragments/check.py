# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the read-only check modules share: they change nothing, so there is no diff."""

from __future__ import annotations


class ModuleDocFragment:
    """incus_cluster, incus_gpu, incus_ownership, incus_ready, incus_vm_support."""

    DOCUMENTATION = r"""
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
  platform: {platforms: posix}
options:
  remote: {description: Incus remote., type: str, default: local}
"""
