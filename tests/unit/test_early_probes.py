"""The provision check's record of each host's probe (ADR-099): which kept probe starts
early, and when the record is written.

The probe's run is replaced by a recorder of what would be asked (no instance here); the
real daemon's side (the early answer used, a changed probe run as templated, the recorded
output removed) is tested in tests/integration/test_lost_answer.py."""

from __future__ import annotations

import importlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tests.unit.fake_incus  # noqa: F401  (puts the collection on sys.path)

pytestmark = pytest.mark.unit

PC = importlib.import_module("ansible_collections.anklume.incus.plugins.action.provision_check")
IC = importlib.import_module("ansible_collections.anklume.incus.plugins.module_utils.incus_client")
SPEC = {"host": "pro-dev", "name": "pro-dev", "project": "pro"}
PARAMS = [{"packages": ["curl"], "lines": [], "force": False}]


def kept(**over: object) -> dict[str, object]:
    return {"project": "pro", "name": "pro-dev", "python": "/usr/bin/python3",
            "params": PARAMS, **over}


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scripts the check would run, recorded instead of run; each answers no drift."""
    scripts: list[str] = []

    def run_in(ask: object, attempts: int = 5) -> tuple[list[list[str]], str]:
        scripts.append(ask.args[3][2])  # type: ignore[attr-defined]  # partial(run_recorded)
        return [[]], ""
    monkeypatch.setattr(PC, "run_in", run_in)
    return scripts


@pytest.mark.parametrize("entry", [None, "junk", kept(project="perso"), kept(name="pro-web"),
                                   kept(params=[])],
                         ids=["none", "not-a-mapping", "other-project", "other-name",
                              "no-probe"])
def test_no_early_start_without_a_matching_entry(entry: object, asked: list[str]) -> None:
    client = IC.IncusClient(socket="/nowhere/unix.socket")
    with ThreadPoolExecutor(2) as pool:
        assert PC.start_kept(pool, client, SPEC, entry) is None
    assert asked == []


def test_a_kept_probe_starts_once_with_its_own_arguments(asked: list[str]) -> None:
    client = IC.IncusClient(socket="/nowhere/unix.socket")
    with ThreadPoolExecutor(2) as pool:
        early = PC.start_kept(pool, client, SPEC, kept())
        assert early is not None and early.answer.result() == ([[]], "")
    assert early.python == "/usr/bin/python3"
    # Canonical: the same arguments in another key order are the same probe.
    assert early.params == PC.canonical([dict(reversed(list(PARAMS[0].items())))])
    assert len(asked) == 1 and json.dumps(PARAMS) in asked[0]


def test_the_record_is_written_only_when_a_probe_changed(tmp_path: Path) -> None:
    record = tmp_path / "probed.json"
    probe = PC.HostProbe(["base_system"], ["base_system"], "script", "/usr/bin/python3",
                         PARAMS)
    targets = {"pro-dev": SPEC}
    other = {"perso-desktop": kept(project="perso", name="perso-desktop")}
    PC.keep_probed(str(record), other, targets, {"pro-dev": probe})
    written = json.loads(record.read_text())
    # A --limit run keeps the other hosts' entries.
    assert written == {**other, "pro-dev": kept()}
    record.write_text("unchanged marker")
    PC.keep_probed(str(record), written, targets, {"pro-dev": probe})
    assert record.read_text() == "unchanged marker"
    # A host without a probe to run is not kept.
    PC.keep_probed(str(record), {}, targets,
                   {"pro-dev": probe._replace(script="", params=[])})
    assert record.read_text() == "unchanged marker"
