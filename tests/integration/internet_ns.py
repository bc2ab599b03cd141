"""An "internet" for the way-out tests (test_egress, test_gateway_roles): a network
namespace holding servers on documentation addresses, joined to the host by a veth pair,
with no route out of it. The host routes the namespace's range into it only, with a
blackhole route behind that one: if the veth goes, no test packet takes the host's
default route (ADR-093). Each module names its own namespace, veth and range.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=60)


def in_box(project: str, name: str, script: str, stdin: str = "",
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """SCRIPT (sh -c) in instance NAME of PROJECT, not checked: a refusal is a result."""
    return subprocess.run(["incus", "exec", "--project", project, name, "--", "sh", "-c",
                           script], input=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout)


@dataclass(frozen=True)
class Internet:
    ns: str                       # the namespace
    uplink: str                   # the host's end of the veth
    routed: str                   # the range the host sends into it (a documentation one)
    host_end: str                 # the two ends' addresses, a /30
    ns_end: str
    servers: tuple[str, ...]      # addresses on its loopback
    back: tuple[str, ...] = ()    # ranges it routes back to the host (no NAT on the way)

    def down(self) -> None:
        for pid in run("ip", "netns", "pids", self.ns, check=False).stdout.split():
            run("kill", pid, check=False)
        run("ip", "netns", "delete", self.ns, check=False)
        run("ip", "link", "delete", self.uplink, check=False)
        run("ip", "route", "delete", "blackhole", self.routed, check=False)

    @contextlib.contextmanager
    def up(self) -> Iterator[None]:
        """The namespace, for the time of the block; leftovers of an earlier run go first."""
        self.down()
        run("ip", "route", "add", "blackhole", self.routed, "metric", "4000")
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "eth0",
            "netns", self.ns)
        run("ip", "addr", "add", f"{self.host_end}/30", "dev", self.uplink)
        run("ip", "link", "set", self.uplink, "up")
        inside = ("ip", "netns", "exec", self.ns)
        run(*inside, "ip", "link", "set", "lo", "up")
        run(*inside, "ip", "addr", "add", f"{self.ns_end}/30", "dev", "eth0")
        run(*inside, "ip", "link", "set", "eth0", "up")
        for address in self.servers:
            run(*inside, "ip", "addr", "add", f"{address}/32", "dev", "lo")
        for cidr in self.back:
            run(*inside, "ip", "route", "add", cidr, "via", self.host_end)
        run("ip", "route", "add", self.routed, "via", self.ns_end, "dev", self.uplink)
        try:
            yield
        finally:
            self.down()
