"""The examples stay deployable and the user docs name only what exists.

Every ``examples/<name>/infra.yml`` validates and syncs (and a second sync
writes nothing), every example has a README with its use case, and every
``make <target>`` written in ``docs/*.md``, ``docs/adr/*.md``, the examples' READMEs and
their infra.yml comments is a real target of the Makefile; every relative link in those
documents points to a file that exists.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anklume.ops.targets import TARGETS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GENERATE = ROOT / "scripts" / "generate.py"
ROADMAP_EXAMPLES = {"student-sysadmin", "teacher-lab", "pro-workstation",
                    "sandbox-isolation", "llm-supervisor", "developer"}
NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/infra.yml"))
OUR_DOCS = [ROOT / "docs" / n for n in ("quickstart.md", "lab-tp.md", "gpu-llm.md")]


def _sync(infra: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATE), str(infra), "--output", str(out)],
                          capture_output=True, text=True, check=False, cwd=ROOT)


def _tree(out: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_the_six_roadmap_examples_are_there() -> None:
    assert set(NAMES) == ROADMAP_EXAMPLES


@pytest.mark.parametrize("name", NAMES)
def test_example_validates_and_syncs_then_a_second_sync_writes_nothing(
        name: str, tmp_path: Path) -> None:
    infra = EXAMPLES / name / "infra.yml"
    first = _sync(infra, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "files written" in first.stdout
    assert "error" not in first.stderr.lower()
    assert (tmp_path / "group_vars" / "all.yml").is_file()
    before = _tree(tmp_path)
    second = _sync(infra, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("sync: no changes"), second.stdout
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", NAMES)
def test_example_names_only_roles_that_exist(name: str) -> None:
    doc = yaml.safe_load((EXAMPLES / name / "infra.yml").read_text())
    for domain in doc["domains"].values():
        for machine, spec in (domain.get("machines") or {}).items():
            for role in spec.get("roles") or []:
                assert (ROOT / "roles" / role).is_dir(), f"{name}: {machine}: no role {role}"


@pytest.mark.parametrize("name", NAMES)
def test_example_has_a_readme_with_its_use_case(name: str) -> None:
    readme = EXAMPLES / name / "README.md"
    assert readme.is_file(), f"examples/{name}/README.md is missing"
    text = readme.read_text()
    assert text.splitlines()[0] == f"# {name}"
    for heading in ("## Use case", "## Hardware", "## Get started"):
        assert re.search(rf"^{heading}$", text, flags=re.M), f"{name}: no '{heading}' heading"
    assert f"cp examples/{name}/infra.yml infra.yml" in text


def test_examples_index_links_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text()
    for name in NAMES:
        assert f"]({name}/)" in index, f"examples/README.md does not link {name}"


def test_teacher_lab_count_sizes_the_class_without_touching_the_others(tmp_path: Path) -> None:
    text = (EXAMPLES / "teacher-lab" / "infra.yml").read_text()
    assert "count: 12" in text
    (tmp_path / "infra.yml").write_text(text.replace("count: 12", "count: 24"))
    result = _sync(tmp_path / "infra.yml", tmp_path)
    assert result.returncode == 0, result.stderr
    inventory = yaml.safe_load((tmp_path / "inventory" / "student.yml").read_text())
    assert list(inventory["all"]["children"]["student"]["children"]) == [
        f"student{n:02d}" for n in range(1, 25)]
    student24 = (tmp_path / "host_vars" / "student24-srv.yml").read_text()
    assert "instance_ip: 10.100.34.10" in student24
    before = (tmp_path / "host_vars" / "student07-srv.yml").read_bytes()
    (tmp_path / "infra.yml").write_text(text)
    result = _sync(tmp_path / "infra.yml", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "host_vars" / "student07-srv.yml").read_bytes() == before
    assert "orphan: host_vars/student13-srv.yml" in result.stdout


# --- every `make <target>` in the docs exists -------------------------------------------

def _makefile_targets() -> set[str]:
    """The targets of anklume/ops/targets.py, which test_make_targets keeps equal to the
    Makefile's."""
    return set(TARGETS)


def _code(text: str) -> list[str]:
    """Code the reader would type: fenced blocks and inline code spans."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def _make_targets_in(code: str) -> list[str]:
    found = []
    for m in re.finditer(r"(?:^|[\s;&|(#`])make((?:[ \t]+[^\s;&|)`]+)*)", code, flags=re.M):
        for token in m.group(1).split():
            if token.startswith("-") or "=" in token:
                continue
            if re.fullmatch(r"[a-z][\w-]*", token):
                found.append(token)
            break
    return found


def _documents() -> list[Path]:
    docs = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "adr").glob("*.md"))
    return docs + sorted(EXAMPLES.glob("**/README.md"))


def test_make_target_parser_reads_the_docs() -> None:
    assert _make_targets_in("run `make snapshot NAME=x` then\nmake FORCE=1 restore") == [
        "snapshot", "restore"]
    assert _make_targets_in("make") == []
    assert {"help", "sync", "apply", "snapshot", "restore"} <= _makefile_targets()
    mentions = [t for doc in OUR_DOCS for c in _code(doc.read_text()) for t in _make_targets_in(c)]
    assert len(mentions) > 20, "the parser finds almost no make commands: it is broken"


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_in_the_docs_exists(doc: Path) -> None:
    targets = _makefile_targets()
    missing = sorted({t for c in _code(doc.read_text()) for t in _make_targets_in(c)} - targets)
    assert not missing, f"{doc.relative_to(ROOT)} names make targets that do not exist: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_every_make_target_in_example_comments_exists(name: str) -> None:
    comments = "\n".join(line for line in (EXAMPLES / name / "infra.yml").read_text().splitlines()
                         if line.lstrip().startswith("#"))
    missing = sorted(set(_make_targets_in(comments)) - _makefile_targets())
    assert not missing, f"examples/{name}/infra.yml comments name missing targets: {missing}"


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)}: broken link {target}"
