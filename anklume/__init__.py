"""AnKLuMe: split one Linux workstation into isolated Incus domains.

The package holds the PSOT generator (``infra.yml`` -> Ansible tree).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
