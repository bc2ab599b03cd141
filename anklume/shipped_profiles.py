"""Profiles AnKLuMe ships: a machine may list them without its domain defining them (ADR-064).

The generator copies a listed one into the domain's profiles, so it is rendered, created
and orphan-checked like a profile the user wrote. A domain that defines a profile of the
same name keeps its own.
"""

from __future__ import annotations

from anklume.model import Profile

# name -> (the machine type it is for, the profile)
SHIPPED: dict[str, tuple[str, Profile]] = {
    "nvidia-compute": ("lxc", Profile(
        "nvidia-compute",
        "NVIDIA GPU for a container (the driver's user space is added per host, ADR-064)",
        {}, {"gpu": {"type": "gpu", "gputype": "physical"}})),
    "gpu-passthrough": ("vm", Profile(
        "gpu-passthrough",
        "Whole GPU passed to a VM by PCI passthrough (VFIO; needs IOMMU and a VM driver)",
        {}, {"gpu": {"type": "gpu", "gputype": "physical"}})),
}


def shipped(name: str) -> tuple[str, Profile] | None:
    """(machine type, a fresh copy of the profile) for a shipped profile name, else None."""
    if name not in SHIPPED:
        return None
    kind, p = SHIPPED[name]
    return kind, Profile(p.name, p.description, dict(p.config),
                         {k: dict(v) for k, v in p.devices.items()})
