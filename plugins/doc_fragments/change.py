# SPDX-License-Identifier: AGPL-3.0-or-later
"""What every module that changes Incus shares: its attributes and O(remote)."""

from __future__ import annotations


class ModuleDocFragment:
    """incus_snapshot, anklume_nftables (which says what its O(remote) is for) and, with
    the reconcile fragment, the object modules."""

    DOCUMENTATION = r"""
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
  platform: {platforms: posix}
options:
  remote: {description: Incus remote (V(local) is the local socket)., type: str, default: local}
"""
