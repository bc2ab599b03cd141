"""`make backup-verify FILE= [KEY=]` (ADR-087): read an archive to its end, decrypting it as
a stream, and check every member against the manifest. Writes nothing, asks Incus nothing.
Also the first pass of `make restore-backup`."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anklume.errors import InputError, Problem
from anklume.ops import backup_archive as archive
from anklume.ops import backup_crypt as crypt
from anklume.ops.context import Context
from anklume.ops.problems import refuse

DAMAGED = "the archive is damaged or incomplete: use another copy (backup-verify checks one)"


PATTERN = "*?["


def inputs(ctx: Context) -> tuple[list[Path], Path | None]:
    """FILE= (an archive, or a pattern naming several: backups/student*) and KEY=, checked:
    (the archives, the identity file or None)."""
    value = ctx.get("FILE")
    if any(c in value for c in PATTERN):
        paths = sorted(Path(p) for p in glob.glob(str(Path(value).expanduser())))
        if not paths:
            raise refuse(f"FILE={value} matches no file here", "name backup archives "
                         "(make backup writes them in backups/)")
    else:
        paths = [Path(value).expanduser()]
    key_value = ctx.get("KEY")
    key = Path(key_value).expanduser() if key_value else None
    if key is not None and not key.is_file():
        raise refuse(f"KEY={key_value} is not a file here",
                     "name the age identity file (age-keygen wrote it)")
    for path in paths:
        shown = value if len(paths) == 1 else f"{value} ({path})"
        if not path.is_file():
            raise refuse(f"FILE={shown} is not a file here", "name a backup archive "
                         "(make backup writes them in backups/)")
        if crypt.encrypted(path) and key is None:
            raise refuse(f"FILE={shown} is encrypted with age and KEY= is not given",
                         "add KEY=<the age identity file whose public key it was encrypted "
                         "to>")
        if key is not None and not crypt.encrypted(path):
            raise refuse(f"FILE={shown} is not encrypted, yet KEY= is given",
                         "leave KEY= out for an archive that is not encrypted")
    return paths, key


def check(path: Path, key: Path | None,
          consume: Callable[[str, Iterator[bytes]], None] | None = None) -> dict[str, Any]:
    """The archive read to its end and checked (CONSUME gets each member); its manifest.
    An InputError with one line per problem (exit 2) otherwise."""
    source = crypt.Decrypting(path, key)
    broken: list[str] = []
    with source as stream:
        try:
            manifest = archive.read(stream, consume)
        except archive.Broken as exc:
            broken = exc.lines
        age = source.finish()
    if age is not None:  # its message says why; the tar reader's complaint is only its echo
        wrong = "no identity matched" in age
        raise InputError([Problem("make", None, str(path), f"age cannot decrypt it: {age}",
                                  "give KEY= the identity it was encrypted to" if wrong
                                  else DAMAGED)])
    if broken:
        raise InputError([Problem("make", None, str(path), line, DAMAGED) for line in broken])
    return manifest


def run(ctx: Context) -> int:
    paths, key = inputs(ctx)
    for path in paths:
        manifest = check(path, key)
        members = manifest["members"]
        total = sum(m["size"] for m in members)
        names = ", ".join(i["name"] for i in manifest.get("instances", [])) or "none"
        print(f"backup-verify: {path}: good: {len(members)} members, {total} bytes, domain "
              f"{manifest.get('domain')}, instances {names}, made {manifest.get('created')} "
              f"on {manifest.get('host')}", file=ctx.out, flush=True)
    return 0
