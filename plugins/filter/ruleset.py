# SPDX-License-Identifier: AGPL-3.0-or-later
"""The domain isolation ruleset as nftables text (ADR-072).

The rules live in plugin_utils/ruleset.py (unit-tested against golden files, without
root); this filter only hands over the play's variables and turns bad input into one line.

  anklume.incus.nftables_ruleset  domains, table, policies, admin_domain, priority,
                                  firewall_mode, log_drops, enabled, interfaces -> text
  anklume.incus.nftables_egress   domains, enabled -> ["domain: what it may reach outside"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anklume.incus.plugins.plugin_utils import egress, ruleset
from ansible_collections.anklume.incus.plugins.plugin_utils.desired_state import (
    DesiredStateError,
    as_bool,
    plain,
)


def nftables_ruleset(domains: Any, table: str, policies: Any = (), admin_domain: str = "",
                     priority: int = -10, firewall_mode: str = "host", log_drops: Any = False,
                     enabled: Any = True, interfaces: Mapping[str, str] | None = None) -> str:
    """The whole file `nft -f` loads for TABLE (see plugin_utils/ruleset.py)."""
    try:
        return ruleset.render(str(table), plain(domains), plain(policies or []),
                              str(admin_domain or ""), int(priority), str(firewall_mode),
                              log_drops, enabled,
                              None if interfaces is None else plain(interfaces))
    except DesiredStateError as exc:
        raise AnsibleFilterError(str(exc)) from None


def nftables_egress(domains: Any, enabled: Any = True) -> list[str]:
    """Each domain's way out, for the plan (ADR-093); [] when all are open."""
    try:
        return egress.summary(plain(domains)) if as_bool(enabled) else []
    except DesiredStateError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"nftables_ruleset": nftables_ruleset, "nftables_egress": nftables_egress}
