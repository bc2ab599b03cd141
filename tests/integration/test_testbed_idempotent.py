"""`make host` and `make image` are idempotent: a run on a ready host changes nothing.

Own lab: none (no fixture or instance: it runs scripts/host.sh and scripts/build-image.sh on the
ready host and reads the image alias).
"""

from __future__ import annotations

from tests.incus_helpers import REPO, query, run


def _image_fingerprint(alias: str) -> str:
    found = query(f"/1.0/images/aliases/{alias}")
    assert isinstance(found, dict)
    return str(found["target"])


def test_host_script_on_a_ready_host_changes_nothing() -> None:
    out = run(["bash", str(REPO / "scripts" / "host.sh")])
    assert "already an Incus host: nothing changed" in out, out


def test_image_script_with_the_alias_present_keeps_the_image(incus: str) -> None:
    before = _image_fingerprint(incus)
    out = run(["bash", str(REPO / "scripts" / "build-image.sh"), incus])
    assert f"alias {incus} exists: nothing to do" in out, out
    assert _image_fingerprint(incus) == before
