#!/usr/bin/env python3
"""Pack this working tree for the test runner (roles/dev_test_runner).

Usage: scripts/runner_tree.py ARCHIVE

Writes ARCHIVE (tar.gz) and ARCHIVE.sha256 only when the tree's content differs from the
digest already there, then prints one JSON line: digest, changed, entries, commit. The
archive is admin_tree's (in-tree links kept, virtualenv and caches skipped); the digest
covers names, modes, link targets and file contents, not mtimes and not .git (git rewrites
its index on a mere `git status`), so a tree that did not change gives the same digest
and the runner keeps its copy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import admin_tree  # scripts/ is on sys.path when this file runs

from anklume.errors import pipe_safe  # admin_tree put the tree root on sys.path


def content_digest(data: bytes) -> str:
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        for member in tar:
            if member.name == ".git" or member.name.startswith(".git/"):
                continue
            digest.update(f"{member.name}\0{member.type!r}\0{member.mode}\0"
                          f"{member.linkname}\0".encode())
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                digest.update(handle.read())
    return digest.hexdigest()


def commit() -> str:
    """HEAD and whether the tree differs from it (the archive carries the working tree)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "--no-optional-locks", "-C", str(admin_tree.ROOT), *args],
                              capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD") or "no-git"
    return head + ("+dirty" if git("status", "--porcelain") else "")


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("runner-tree: error: usage: scripts/runner_tree.py ARCHIVE", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    stamp = out.with_name(out.name + ".sha256")
    data, entries = admin_tree.archive()
    digest = content_digest(data)
    known = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else ""
    changed = digest != known or not out.is_file()
    if changed:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
        stamp.write_text(digest + "\n", encoding="utf-8")
    print(json.dumps({"digest": digest, "changed": changed, "entries": entries,
                      "commit": commit()}))
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
