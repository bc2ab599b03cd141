# SPDX-License-Identifier: AGPL-3.0-or-later
# ruff: noqa: E402
"""The community.general.incus connection, made robust against a lost answer (ADR-046).

Under load, a short `incus exec` sometimes returns exit 0 with its output missing (also
reported upstream: community.general issue 8980, "Intermittent issues with temporary
directory creation"); Ansible then fails on an empty answer, e.g. "failed to resolve
remote temporary directory" or "No start of json char found". Re-running the command is
not safe (a module may have changed something), so nothing is ever re-run: each command
keeps its answer in a file inside the instance and ends its output with an end marker;
an answer that arrives without the marker is read again from that file, a read-only step
that is safe to repeat. Incus errors (project or instance missing, instance stopped)
become one line naming the host and the fix.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: anklume_incus
short_description: Run tasks in Incus instances, recovering answers lost by incus exec
description:
  - The community.general.incus connection (same options and variables), with every command
    wrapped so that its answer is kept in the instance and read again when C(incus exec)
    loses it; no command is ever run twice.
author: AnKLuMe contributors (!UNKNOWN)
options:
  remote_addr:
    description: The instance to run in.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_incus_host
  executable:
    description: The shell that runs each command in the instance.
    type: string
    default: /bin/sh
    vars:
      - name: ansible_executable
      - name: ansible_incus_executable
  incus_become_method:
    description: How to switch to a non-root I(remote_user).
    type: string
    default: /bin/su
    vars:
      - name: incus_become_method
  remote:
    description: The Incus remote holding the instance.
    type: string
    default: local
    vars:
      - name: ansible_incus_remote
  remote_user:
    description: The user running the commands.
    type: string
    default: root
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  project:
    description: The Incus project holding the instance.
    type: string
    default: default
    vars:
      - name: ansible_incus_project
"""

import re
import shlex
import subprocess
import time
import uuid

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible_collections.community.general.plugins.connection.incus import (
    Connection as IncusConnection,
)

ANSWERS = "/run/anklume-answer"
END = "ANKLUME-ANSWER-END"
REREADS = 5
# Incus's own errors (the wrapper never ran) and what the user should do about each.
FIXES = (
    ("Project not found", "its Incus project does not exist: run `make apply`, or `make sync` "
                          "if infra.yml no longer declares it"),
    ("Instance not found", "its instance does not exist: run `make apply`, or `make sync` if "
                           "infra.yml no longer declares it"),
    ("Instance is not running", "its instance is stopped: run `make apply` (it starts it)"),
)


def end_marker(token: str) -> re.Pattern[str]:
    return re.compile(rf"\n?{END} {token} (\d+)\n?$")


def wrap(cmd: str, token: str, size: int | None = None) -> str:
    """``cmd`` keeping its answer in ANSWERS/token (earlier answers are cleared first:
    Ansible runs one command at a time per host), printed back with an end marker that
    carries the exit code. With SIZE (the bytes of its standard input, a pipelined
    module), the input is kept first and the command runs only when all of it arrived:
    an exec cut short would otherwise run a truncated (or empty, exit 0) program. A cut
    input leaves no folder, so reread() says the command never started."""
    d = shlex.quote(f"{ANSWERS}/{token}")
    given = "" if size is None else (
        f"cat >{d}/in; if [ \"$(wc -c <{d}/in)\" -ne {int(size)} ]; then rm -rf {d}; exit 97; "
        "fi; ")
    stdin = "" if size is None else f" <{d}/in"
    return (f"rm -rf {shlex.quote(ANSWERS)}; if (umask 077 && mkdir -p {d}) 2>/dev/null; then "
            f"{given}( {cmd} ){stdin} >{d}/out 2>{d}/err; rc=$?; echo \"$rc\" >{d}/rc; "
            f"cat {d}/out; printf '\\n{END} {token} %s\\n' \"$rc\"; cat {d}/err >&2; "
            f"exit \"$rc\"; else {cmd}; fi")


def reread(token: str) -> str:
    """Read an answer again; exit 3 when the command never started (no folder)."""
    d = shlex.quote(f"{ANSWERS}/{token}")
    return (f"test -d {d} || exit 3; test -f {d}/rc || exit 4; cat {d}/out && "
            f"printf '\\n{END} {token} %s\\n' \"$(cat {d}/rc)\" && cat {d}/err >&2")


class Connection(IncusConnection):  # type: ignore[misc]  # community.general has no py.typed
    """community.general.incus with lost answers recovered and Incus errors explained."""

    transport = "anklume_incus"

    def _run(self, cmd: str, in_data: bytes | None = None) -> tuple[int, str, str]:
        local_cmd = [to_bytes(a, errors="surrogate_or_strict") for a in self._build_command(cmd)]
        proc = subprocess.Popen(local_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out, err = proc.communicate(to_bytes(in_data, errors="surrogate_or_strict",
                                             nonstring="passthru"))
        return proc.returncode, to_text(out), to_text(err)

    def _explain(self, err: str) -> None:
        """Raise one line naming the host and the fix when Incus itself refused."""
        text = err.strip()
        if not text.startswith("Error: "):
            return
        for needle, fix in FIXES:
            if needle in text:
                raise AnsibleConnectionFailure(
                    f"{self._instance()} (project {self.get_option('project')}): {fix} "
                    f"[incus: {text[len('Error: '):]}]")

    def exec_command(self, cmd: str, in_data: bytes | None = None,
                     sudoable: bool = True) -> tuple[int, bytes | str, bytes | str]:
        if self.get_option("remote_user") != "root":
            upstream: tuple[int, bytes, bytes] = super().exec_command(
                cmd, in_data=in_data, sudoable=sudoable)
            return upstream
        # The base class of Incus's connection only records the call; the command runs here.
        super(IncusConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._display.vvv(f"EXEC {cmd}", host=self._instance())
        for _attempt in range(2):
            token = uuid.uuid4().hex[:16]
            data = to_bytes(in_data, errors="surrogate_or_strict", nonstring="passthru")
            size = None if in_data is None else len(data)
            rc, out, err = self._run(wrap(cmd, token, size), in_data)
            answer = self._answer(token, out, err)
            if answer is not None:
                return answer
            self._explain(err)
            answer = self._recover(token, rc, out)
            if answer is not None:
                return answer
            self._display.warning(f"{self._instance()}: incus exec did not start the command "
                                  "(nothing ran in the instance); starting it once more")
        raise AnsibleConnectionFailure(
            f"{self._instance()}: incus exec twice failed to start a command: {err.strip()}")

    def put_file(self, in_path: str, out_path: str) -> None:
        """`incus file push`, checked (the upstream plugin ignores its exit code) and tried
        again when it fails: pushing the same file twice is harmless."""
        if self.get_option("remote_user") != "root":
            super().put_file(in_path, out_path)
            return
        super(IncusConnection, self).put_file(in_path, out_path)
        self._display.vvv(f"PUT {in_path} TO {out_path}", host=self._instance())
        cmd = [self._incus_cmd, "--project", self.get_option("project"), "file", "push",
               "--quiet", in_path, f"{self.get_option('remote')}:{self._instance()}/{out_path}"]
        err = ""
        for attempt in range(1, 4):
            proc = subprocess.run([to_bytes(a, errors="surrogate_or_strict") for a in cmd],
                                  capture_output=True, check=False)
            if proc.returncode == 0:
                return None
            err = to_text(proc.stderr).strip()
            self._explain(err)
            self._display.warning(f"{self._instance()}: incus file push failed ({err}); "
                                  f"pushing again ({attempt}/3)")
            time.sleep(0.5 * attempt)
        raise AnsibleConnectionFailure(f"{self._instance()}: cannot push {in_path} to "
                                       f"{out_path}: {err}")

    @staticmethod
    def _answer(token: str, out: str, err: str) -> tuple[int, str, str] | None:
        found = end_marker(token).search(out)
        return (int(found.group(1)), out[:found.start()], err) if found else None

    def _recover(self, token: str, rc: int, out: str) -> tuple[int, str, str] | None:
        """The answer kept in the instance; None when the command never started there."""
        for attempt in range(1, REREADS + 1):
            self._display.warning(
                f"{self._instance()}: incus exec lost the answer (exit {rc}, {len(out)} bytes); "
                f"reading it again from the instance ({attempt}/{REREADS}; the command is "
                "not run again)")
            rc2, out2, err2 = self._run(reread(token))
            if rc2 == 3:
                return None
            answer = self._answer(token, out2, err2)
            if answer is not None:
                return answer
            self._explain(err2)
            time.sleep(0.5 * attempt)
        raise AnsibleConnectionFailure(
            f"{self._instance()}: incus exec lost the answer of a command and it could not be "
            f"read back from {ANSWERS} ({REREADS} tries): rerun `make apply`")
