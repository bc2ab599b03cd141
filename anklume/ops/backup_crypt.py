"""A backup archive through `age` (ADR-087): written encrypted to recipients, read back with an
identity file. The plaintext only ever crosses pipes; the key file's path and contents are
never printed or stored (age reads the file itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from anklume.ops.problems import refuse

AGE_MAGIC = b"age-encryption.org/"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
SUFFIX = ".age"


def _age() -> str:
    found = shutil.which("age")
    if found is None:
        raise refuse("age is not installed on this host (it encrypts and decrypts backups)",
                     "apt-get install age (make host installs it)")
    return found


def encrypted(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(len(ARMOR_MAGIC))
    return head.startswith(AGE_MAGIC) or head.startswith(ARMOR_MAGIC)


def recipients(value: str) -> list[str]:
    """age's arguments for ENCRYPT=: a public key (age1..., ssh-...) or a recipients file.
    Checked by age itself on empty input, so a bad one is refused before any export."""
    value = value.strip()
    if value.startswith(("age1", "ssh-")):
        args = ["-r", value]
        shown = "the recipient " + value[:12] + "..."
    elif Path(value).expanduser().is_file():
        args = ["-R", str(Path(value).expanduser())]
        shown = f"the recipients file {value}"
    else:
        raise refuse(f"ENCRYPT={value[:20]} is neither an age recipient (age1...) nor a file "
                     "of recipients here",
                     "ENCRYPT=age1... (age-keygen -y identity.txt prints it) or "
                     "ENCRYPT=<file of recipients>; a passphrase is not accepted (age asks it "
                     "on a terminal)")
    proc = subprocess.run([_age(), "-e", *args], input=b"", capture_output=True, check=False)
    if proc.returncode:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        raise refuse(f"ENCRYPT= names {shown}, which age refuses: "
                     f"{why[0] if why else 'exit ' + str(proc.returncode)}",
                     "give a public key (age1...) or a file of them, never the identity")
    return args


@contextmanager
def writer(path: Path, args: list[str] | None) -> Iterator[IO[bytes]]:
    """A stream whose bytes land in PATH: through `age -e ARGS` when ARGS is given."""
    with path.open("wb") as out:
        if args is None:
            yield out
            out.flush()
            os.fsync(out.fileno())
            return
        proc = subprocess.Popen([_age(), "-e", *args], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None
        try:
            yield proc.stdin
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait():
                raise OSError(f"age could not encrypt: {err}")
            os.fsync(out.fileno())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class Decrypting:
    """The plaintext of an archive: the file itself, or `age -d -i KEY`'s output."""

    def __init__(self, path: Path, key: Path | None) -> None:
        self.path, self.key = path, key
        self.proc: subprocess.Popen[bytes] | None = None
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.key is None:
            self.file = self.path.open("rb")
            return self.file
        self.proc = subprocess.Popen([_age(), "-d", "-i", str(self.key), str(self.path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        return self.proc.stdout

    def finish(self) -> str | None:
        """age's complaint (wrong key, damaged ciphertext), or None when it ended well."""
        if self.proc is None:
            return None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        while self.proc.stdout.read(1 << 20):  # what the tar reader left (its zero blocks)
            pass
        err = self.proc.stderr.read().decode(errors="replace").strip()
        if self.proc.wait() == 0:
            return None
        lines = [ln.removeprefix("age: ").removeprefix("error: ") for ln in err.splitlines()
                 if ln.strip() and not ln.startswith(("age: report", "[", "age: [", "age: ["))]
        return lines[0] if lines else f"age exited {self.proc.returncode}"

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for f in (self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()
