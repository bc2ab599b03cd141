# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the modules that change things outside the object reconciler share."""

from __future__ import annotations


class ModuleDocFragment:
    """incus_snapshot, anklume_nftables (which says what its O(remote) is for)."""

    DOCUMENTATION = r"""
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
  platform: {platforms: posix}
options:
  remote: {description: Incus remote (V(local) is the local socket)., type: str, default: local}
"""
