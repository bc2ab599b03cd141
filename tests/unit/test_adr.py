"""The decision records stay citable: one file per ADR, an index in number order.

Code, roles, tests and docs cite a decision as ``ADR-NNN``. Every number cited anywhere
in the tree has exactly one ``docs/adr/NNN-*.md``, whose heading carries that number;
``docs/adr/README.md`` links every file, in number order. The relative links of
``docs/adr/*.md`` are checked with the other docs in test_examples.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ADR_DIR = ROOT / "docs" / "adr"
INDEX = ADR_DIR / "README.md"
CITATION = re.compile(r"\bADR-(\d{3})\b")
FILE_NAME = re.compile(r"(\d{3})-[a-z0-9]+(?:-[a-z0-9]+)*\.md")
# Not the project's text: tools, caches, build and run outputs (see .gitignore).
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
             ".hypothesis", "build", "dist", ".bench", "logs", ".cache", ".soak", ".ansible",
             ".ai-sessions", "collections"}


def _adr_files() -> list[Path]:
    return sorted(p for p in ADR_DIR.glob("*.md") if p.name != "README.md")


def _tree_files() -> list[Path]:
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs
                         if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        found += [Path(top) / f for f in sorted(files) if not f.endswith((".pyc", ".tar.gz"))]
    return found


def _citations() -> dict[str, set[str]]:
    """ADR number -> the files (relative to the root) that cite it."""
    cited: dict[str, set[str]] = {}
    for path in _tree_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for num in CITATION.findall(text):
            cited.setdefault(num, set()).add(str(path.relative_to(ROOT)))
    return cited


def test_adr_files_are_named_number_slug_and_headed_with_their_number() -> None:
    files = _adr_files()
    assert len(files) > 40, "docs/adr/ holds almost no ADR: the glob is broken"
    for path in files:
        m = FILE_NAME.fullmatch(path.name)
        assert m, f"docs/adr/{path.name}: not NNN-lowercase-words.md"
        assert len(path.stem.split("-")) <= 9, f"docs/adr/{path.name}: slug over 8 words"
        first = path.read_text().splitlines()[0]
        assert re.fullmatch(rf"# ADR-{m.group(1)}: \S.*", first), (
            f"docs/adr/{path.name}: first line {first!r} is not '# ADR-{m.group(1)}: title'")


def test_each_adr_number_has_one_file() -> None:
    numbers = [p.name[:3] for p in _adr_files()]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not twice, f"ADR numbers with more than one file in docs/adr/: {twice}"


def test_citation_scan_reads_the_tree() -> None:
    cited = _citations()
    assert len(cited) > 30, "the scan finds almost no ADR citation: it is broken"
    assert any(f.startswith("plugins/") for f in cited["013"])
    assert not any(f.startswith((".venv/", ".git/")) for fs in cited.values() for f in fs)


def test_every_cited_adr_has_exactly_one_file() -> None:
    files: dict[str, list[str]] = {}
    for path in _adr_files():
        files.setdefault(path.name[:3], []).append(path.name)
    problems = [f"ADR-{num} (cited in {', '.join(sorted(where)[:3])}): "
                f"{len(files.get(num, []))} files in docs/adr/"
                for num, where in sorted(_citations().items()) if len(files.get(num, [])) != 1]
    assert not problems, "\n".join(problems)


def test_index_lists_every_adr_file_in_number_order() -> None:
    text = INDEX.read_text()
    linked = re.findall(r"\]\((\d{3}-[^)#\s]+\.md)\)", text)
    assert linked == [p.name for p in _adr_files()], (
        "docs/adr/README.md must link every docs/adr/NNN-*.md once, in number order")
    for name in linked:
        title = (ADR_DIR / name).read_text().splitlines()[0].removeprefix("# ")
        num, _, heading = title.partition(": ")
        assert f"- {num}: [{heading}]({name})" in text, f"index line for {name} differs"


def test_architecture_points_to_the_index_and_holds_no_adr_text() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert "](adr/README.md)" in text
    assert not re.search(r"^#+ ADR-\d{3}", text, flags=re.M), (
        "docs/ARCHITECTURE.md holds an ADR section: it belongs in docs/adr/NNN-title.md")
