"""Shared fixtures: a ready Incus daemon for integration tests.

Integration tests are marked ``incus``. When the daemon is missing they are
skipped on a developer's machine with the reason shown, and they FAIL when
``CI=true``: integration tests are never skipped silently in CI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import schedule
from tests.incus_helpers import image_exists, incus_available

# The repository is the collection anklume.incus (collections/ links it in): unit tests
# import its plugins by their collection path, as Ansible does.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))

LOCAL_IMAGE = os.environ.get("ANKLUME_IMAGE", "anklume/debian-12")

# Under `make test` pytest inherits make's MAKEFLAGS and MAKELEVEL: every make a test runs
# would read them as a parent's (ADR-071: a make started by a make is not checked
# strictly). A test's make is the user's own command line.
for _inherited in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "ANKLUME_LOCK"):
    os.environ.pop(_inherited, None)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def incus() -> str:
    """Return the local image alias once Incus answers and the image exists."""
    reason = incus_available()
    if reason is None and not image_exists(LOCAL_IMAGE):
        reason = f"image {LOCAL_IMAGE} is missing (run: make image)"
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI=true and Incus is not usable: {reason}")
        pytest.skip(reason)
    return LOCAL_IMAGE


# Modules that change or compare what every lab relies on: they restart incusd or lxcfs,
# run scripts/host.sh, delete or rebuild the image, or compare the host's projects and
# tables. `make test` runs them alone, then the other integration modules side by side
# (scripts/test.sh, docs/testing.md).
# The modules that run the namespace daemons (test_backup, test_cluster, test_remote) share
# their bridge too, but only with each other: they are one unit of the integration phase,
# one after the other on one worker (tests/schedule.py).
HOST_WIDE = {"test_doctor", "test_host_lxcfs", "test_isolation", "test_runner", "test_spoofing",
             "test_testbed_idempotent"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs the daemon: mark and wire it."""
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.incus)
            if Path(str(item.fspath)).stem in HOST_WIDE:
                item.add_marker(pytest.mark.host_wide)
            if "incus" not in getattr(item, "fixturenames", []):
                item.fixturenames.append("incus")  # type: ignore[attr-defined]
    schedule.longest_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile` takes the longest modules first (tests/schedule.py, ADR-094)."""
    if config.getoption("dist", None) == "loadfile":
        return schedule.scheduler(config, log)
    return None
