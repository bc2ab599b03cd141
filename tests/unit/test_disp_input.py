"""Disposables' bad input (ADR-084): infra.yml's `disposables:` and reserved range, checked
by the real generator, and `make disp`'s variables, each refused in one line, exit 2,
before Incus is asked anything. The `incus` first on PATH only records that it was called
(it must not be): the disposables themselves run on the real Incus in
tests/integration/test_disposables.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anklume import validate, yamlload
from anklume.disposables import name, octet_of, seconds
from anklume.errors import InputError
from anklume.ops import main
from tests.incus_helpers import guard_incus
from tests.unit.gen_support import sync

pytestmark = pytest.mark.unit

INFRA = """\
project_name: t28du
global: {base_subnet: "10.100"}
domains:
  sand:
    subnet_id: 1
    disposables: {preload: 1, ttl: 30m}
    machines: {sand-box: {ip: "10.100.1.10"}}
  work:
    subnet_id: 2
    machines: {work-box: {ip: "10.100.2.210"}}
domain_templates:
  lab:
    count: 2
    first_subnet_id: 20
"""


def problems(text: str) -> list[str]:
    try:
        validate.validate(yamlload.load_text(text, "infra.yml"))
    except InputError as exc:
        return [f"{p.path}: {p.what}" for p in exc.problems]
    return []


def test_the_shipped_shape_validates_and_a_domain_without_them_keeps_its_addresses() -> None:
    assert problems(INFRA) == []  # work-box at .210: work allows no disposables


@pytest.mark.parametrize(("change", "want"), [
    (("preload: 1", "preload: 9"), "domains.sand.disposables.preload: preload 9 is outside 0-8"),
    (("ttl: 30m", "ttl: soon"), "domains.sand.disposables.ttl: 'soon' is not a duration"),
    (("ttl: 30m", "ttl: 0s"), "domains.sand.disposables.ttl: '0s' is not a duration"),
    (("{preload: 1, ttl: 30m}", "yes please"),
     "domains.sand.disposables: expected true, false or a mapping"),
    (("{preload: 1, ttl: 30m}", "{prelaod: 1}"),
     "domains.sand.disposables.prelaod: unknown key 'prelaod'"),
    (('ip: "10.100.1.10"', 'ip: "10.100.1.205"'),
     "domains.sand.machines.sand-box.ip: 10.100.1.205 is in the range reserved for domain "
     "sand's disposables"),
    (("sand-box:", "sand-disp201:"),
     "domains.sand.machines.sand-disp201: sand-disp201 is the name of one of domain sand's "
     "disposables"),
    (('base_subnet: "10.100"', 'base_subnet: "10.100", dhcp_range: "100-220"'),
     "global.disposable_range: the disposables' range 200-249 overlaps the DHCP range 100-220"),
    (('base_subnet: "10.100"', 'base_subnet: "10.100", disposable_range: "240-253"'),
     "global.disposable_range: '240-253' is not a range of host octets"),
])
def test_a_bad_disposables_declaration_is_named(change: tuple[str, str], want: str) -> None:
    found = problems(INFRA.replace(*change))
    assert any(p.startswith(want) for p in found), found


def test_a_template_passes_disposables_to_each_of_its_domains() -> None:
    text = INFRA.replace("    first_subnet_id: 20\n",
                         "    first_subnet_id: 20\n    disposables: true\n")
    infra, _ = validate.validate(yamlload.load_text(text, "infra.yml"))
    got = {d.name: d.disposables is not None for d in infra.domains}
    assert got == {"sand": True, "work": False, "lab01": True, "lab02": True}


def test_durations_names_and_octets() -> None:
    assert [seconds(t) for t in ("90s", "30m", "1h30m", "2d", "1w")] == [
        90, 1800, 5400, 172800, 604800]
    assert [seconds(t) for t in ("", "1", "1x", "m", "-1h", "0m")] == [None] * 6
    assert name("sand", 203) == "sand-disp203"
    assert octet_of("sand", "sand-disp203") == 203
    assert [octet_of("sand", n) for n in ("sand-box", "sand-disp", "sand-disp07", "x-disp2")] \
        == [None] * 4


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert sync(tmp_path, INFRA).code == 0
    monkeypatch.setenv("PATH", f"{guard_incus(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("values", "line"), [
    ({"DOMAIN": "sandd"}, "make disp: unknown domain sandd; did you mean sand?"),
    ({"DOMAIN": "work"}, "make disp: domain work does not allow disposables; add "
     "`disposables: true` to domains.work in infra.yml, then make apply"),
    ({"DOMAIN": "sand,work"}, "make disp: DOMAIN=sand,work names more than one domain"),
    ({"DOMAIN": "lab"}, "make disp: DOMAIN=lab names more than one domain"),
    ({"DOMAIN": "sand", "TTL": "forever"}, "make disp: TTL=forever is not a duration"),
    ({"DOMAIN": "sand", "FILE": "/nonexistent/x.pdf"},
     "make disp: FILE=/nonexistent/x.pdf is not a file or a directory here"),
    ({"DOMAIN": "sand", "OUT": "/nonexistent"}, "make disp: OUT=/nonexistent is not a directory"),
    ({"CMD": "true"}, "make disp: DOMAIN= is required"),
    ({"DOMAIN": "sand", "I": "sand-box"}, "make disp: I= is not read here"),
])
def test_a_bad_disp_is_one_line_exit_2_and_asks_incus_nothing(
        tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        values: dict[str, str], line: str) -> None:
    flags = " ".join(f"{k}={v}" for k, v in values.items())
    monkeypatch.setenv("MAKEFLAGS", f" -- {flags}")
    monkeypatch.setenv("MAKELEVEL", "1")
    rc = main.main(["disp"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(line), err
    assert not (tree / "calls").exists(), "Incus was asked"
