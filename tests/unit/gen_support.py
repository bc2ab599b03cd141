"""Helpers for the generator's unit tests: run the CLI in-process on a temp tree."""

from __future__ import annotations

import contextlib
import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from anklume import cli

VALID = """\
project_name: test
global:
  base_subnet: "10.100"
domains:
  admin:
    description: "Administration"
    subnet_id: 0
    machines:
      admin-ansible:
        ip: "10.100.0.10"
        config:
          security.nesting: "true"
        roles: [base_system]
  pro:
    subnet_id: 2
    ephemeral: true
    machines:
      pro-dev:
        ip: "10.100.2.10"
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(*args: str) -> Result:
    """Run the generator CLI in-process, capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def write_infra(tmp: Path, text: str, name: str = "infra.yml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def sync(tmp: Path, text: str, *args: str) -> Result:
    """Write ``text`` as tmp/infra.yml and sync it into tmp."""
    path = write_infra(tmp, text)
    return run(str(path), *args)


def refused_in_one_line(tmp: Path, text: str, expected: list[str], line: int) -> str:
    """Sync TEXT in TMP: exit 2, no traceback, one error line holding each EXPECTED part
    and naming infra.yml's LINE, what/fix joined by "; ", and nothing written. The line."""
    result = sync(tmp, text)
    assert result.code == 2, result
    assert "Traceback" not in result.err
    errors = [e for e in result.err.splitlines() if not e.startswith("warning:")]
    assert len(errors) == 1, errors
    assert all(x in errors[0] for x in expected), errors[0]
    assert f"infra.yml:{line}: " in errors[0], errors[0]
    assert "; " in errors[0]
    assert tree(tmp) == {}
    return errors[0]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), infra.yml excluded."""
    out: dict[str, bytes] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            rel = full.relative_to(root).as_posix()
            if rel != "infra.yml":
                out[rel] = full.read_bytes()
    return out


def mtimes(root: Path) -> dict[str, int]:
    return {rel: (root / rel).stat().st_mtime_ns for rel in tree(root)}
