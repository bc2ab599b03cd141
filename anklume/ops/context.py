"""What a target's runner gets: its checked variables, the tree, and the ways to run the
generator, Ansible and incus with the user's terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from anklume.ops import makevars
from anklume.ops import scope as scopes
from anklume.ops import tree as trees
from anklume.ops.targets import FLAGS, Target

# ansible-playbook's own start, held until its arguments come on file descriptor ARGV[1]:
# importing Ansible (0.2 s here) overlaps the sync that comes first (ADR-083). An empty
# read (this process ended, or had nothing to run) ends it, having done nothing.
WARM_PLAYBOOK = """\
import json, os, sys
from ansible.cli.playbook import main
with os.fdopen(int(sys.argv[1])) as given:
    argv = given.read()
if argv:
    sys.argv = json.loads(argv)
    sys.exit(main())
"""


@dataclass
class Context:
    target: Target
    values: dict[str, str]
    root: Path = field(default_factory=Path.cwd)
    out: TextIO = field(default=sys.stdout)
    err: TextIO = field(default=sys.stderr)
    _tree: trees.Tree | None = None
    _warm: tuple[subprocess.Popen[bytes], TextIO] | None = None

    # --- variables --------------------------------------------------------------------
    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def flag(self, name: str) -> bool:
        assert name in FLAGS, name
        return makevars.flag(name, self.values.get(name, ""))

    @property
    def infra(self) -> str:
        return self.values.get("INFRA") or "infra.yml"

    # --- the tree ---------------------------------------------------------------------
    def tree(self, reload: bool = False) -> trees.Tree:
        if self._tree is None or reload:
            self._tree = trees.load(self.root)
        return self._tree

    def scope(self) -> scopes.Scope:
        return scopes.resolve(self.tree(), self.values)

    # --- tools ------------------------------------------------------------------------
    @property
    def python(self) -> str:
        return sys.executable

    @property
    def bin(self) -> Path:
        return Path(sys.executable).parent

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        # cryptography 51 warns "DSA is deprecated" each time ansible-core starts (it imports
        # the DSA module for its ssh agent): a line that would end every apply and plan.
        quiet = "ignore:DSA is deprecated"
        env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), quiet) if w)
        return env

    def run(self, argv: Sequence[str], check_input: str | None = None) -> int:
        """Run ARGV in the tree with the user's terminal; its exit status."""
        self.out.flush()
        self.err.flush()
        proc = subprocess.run(list(argv), cwd=self.root, env=self.env(), check=False,
                              input=check_input, text=check_input is not None)
        return proc.returncode

    def sync(self, *extra: str) -> int:
        """The generator, in this process (no second Python start on every apply); its
        messages and exit status are those of scripts/generate.py."""
        from anklume import cli
        from anklume.errors import guarded
        infra = self.infra if os.path.isabs(self.infra) else os.path.relpath(self.root / self.infra)
        argv = [infra, "--output", str(self.root), *extra]
        return guarded(lambda: cli.run(argv, self.out, self.err),
                       "files already replaced are complete, none is half-written")

    def warm_playbook(self) -> None:
        """Start ansible-playbook's Python now (WARM_PLAYBOOK), for the next playbook()."""
        given, hand = os.pipe()
        try:
            proc = subprocess.Popen([self.python, "-c", WARM_PLAYBOOK, str(given)],
                                    cwd=self.root, env=self.env(), pass_fds=(given,))
        except OSError:
            os.close(hand)
            return
        finally:
            os.close(given)
        self._warm = (proc, os.fdopen(hand, "w", encoding="utf-8"))

    def close(self) -> None:
        """End a held ansible-playbook that was never given its arguments (an error came
        first): it reads nothing and exits, having done nothing."""
        if self._warm is not None:
            self._warm[1].close()
            self._warm = None

    def playbook(self, playbook: str, *args: str) -> int:
        argv = [str(self.bin / "ansible-playbook"), playbook, *args]
        if self._warm is None:
            return self.run(argv)
        proc, hand = self._warm
        self._warm = None
        self.out.flush()
        self.err.flush()
        try:
            with hand:
                hand.write(json.dumps(argv))
        except BrokenPipeError:  # it ended early (it could not import Ansible): run it plainly
            proc.wait()
            return self.run(argv)
        return proc.wait()

    def capture(self, argv: Sequence[str]) -> str | None:
        """ARGV's standard output (its errors go to the user); None when it fails."""
        self.out.flush()
        self.err.flush()
        proc = subprocess.run(list(argv), cwd=self.root, env=self.env(), check=False,
                              stdout=subprocess.PIPE, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None
