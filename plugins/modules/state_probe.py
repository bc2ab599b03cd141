#!/usr/bin/python
# SPDX-License-Identifier: AGPL-3.0-or-later
# Ansible's plugin layout puts DOCUMENTATION (long YAML lines) before the imports:
# ruff: noqa: E402, E501
"""Read, in one call inside an instance, whether the state a role manages has drifted."""

from __future__ import annotations

DOCUMENTATION = r"""
module: state_probe
short_description: Say in one call whether the state a provisioning role manages has drifted
description:
  - Runs inside an instance and reads, without changing anything, the state that a role
    declares (packages, generated locales, lines in files, links, files, directories,
    command outputs). It returns one line per difference in RV(drift).
  - A role calls it first and runs its converging tasks only when RV(drift) is not empty
    (ADR-058), so a no-op run costs one C(incus exec) per role instead of one per task,
    and a drifted package or setting is still repaired by the role's own tasks.
  - The checks follow the semantics of the modules that converge them
    (M(ansible.builtin.apt) C(state=present), M(community.general.locale_gen),
    M(ansible.builtin.lineinfile), M(ansible.builtin.file) C(state=link),
    M(ansible.builtin.copy)); a role must list every state its tasks manage.
version_added: 0.1.0
author: AnKLuMe contributors
attributes:
  check_mode: {support: full, description: Reads only; check mode runs the same reads.}
  diff_mode: {support: none, description: Nothing changes, so there is no diff.}
  platform: {platforms: [debian], support: full, description: Debian-family instances (dpkg).}
options:
  packages:
    description: Debian packages that must be installed (C(dpkg-query) status C(installed)).
    type: list
    elements: str
    default: []
  locales:
    description: Locales that must be generated, as C(locale -a) lists them (case and dashes ignored).
    type: list
    elements: str
    default: []
  lines:
    description: Lines that must be in files, with M(ansible.builtin.lineinfile) semantics.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The file., type: path, required: true}
      regexp: {description: The last line matching it must equal O(lines[].line); when none matches, O(lines[].line) must be present., type: str, required: true}
      line: {description: The line., type: str, required: true}
      owner: {description: Owner name the file must have., type: str}
      group: {description: Group name the file must have., type: str}
      mode: {description: Octal mode the file must have (a string such as V(0644))., type: str}
  links:
    description: Symbolic links that must point exactly at O(links[].src).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The link., type: path, required: true}
      src: {description: Its target., type: str, required: true}
  files:
    description: Regular files that must exist (following links), optionally with a content checksum and attributes.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The file., type: path, required: true}
      sha256: {description: SHA-256 of the content it must have., type: str}
      owner: {description: Owner name., type: str}
      group: {description: Group name., type: str}
      mode: {description: Octal mode (a string such as V(0755))., type: str}
  directories:
    description: Directories that must exist with these attributes.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The directory., type: path, required: true}
      owner: {description: Owner name., type: str}
      group: {description: Group name., type: str}
      mode: {description: Octal mode (a string such as V(0711))., type: str}
  commands:
    description: Commands whose standard output, stripped, must equal O(commands[].stdout). They must only read.
    type: list
    elements: dict
    default: []
    suboptions:
      argv: {description: The command and its arguments., type: list, elements: str, required: true}
      stdout: {description: The expected output., type: str, required: true}
  force:
    description: Report drift whatever the state (C(make apply FULL=1), or a role asked to refresh a cache).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the state base_system manages
  anklume.incus.state_probe:
    packages: [locales, tzdata]
    locales: [en_US.UTF-8]
    lines: [{path: /etc/default/locale, regexp: "^LANG=", line: LANG=en_US.UTF-8, mode: "0644"}]
    links: [{path: /etc/localtime, src: /usr/share/zoneinfo/Etc/UTC}]
  register: state
- name: Converge only on drift
  ansible.builtin.include_tasks: converge.yml
  when: state.drift | length > 0
"""

RETURN = r"""
drift: {description: One line per difference; empty when the instance already holds the state., type: list, elements: str, returned: always}
"""

import grp
import hashlib
import os
import pwd
import re
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

_LINE = {"path": {"type": "path", "required": True}, "regexp": {"type": "str", "required": True},
         "line": {"type": "str", "required": True}, "owner": {"type": "str"},
         "group": {"type": "str"}, "mode": {"type": "str"}}
_ATTRS = {"owner": {"type": "str"}, "group": {"type": "str"}, "mode": {"type": "str"}}

ARGUMENT_SPEC = {
    "packages": {"type": "list", "elements": "str", "default": []},
    "locales": {"type": "list", "elements": "str", "default": []},
    "lines": {"type": "list", "elements": "dict", "default": [], "options": _LINE},
    "links": {"type": "list", "elements": "dict", "default": [],
              "options": {"path": {"type": "path", "required": True},
                          "src": {"type": "str", "required": True}}},
    "files": {"type": "list", "elements": "dict", "default": [],
              "options": {"path": {"type": "path", "required": True}, "sha256": {"type": "str"},
                          **_ATTRS}},
    "directories": {"type": "list", "elements": "dict", "default": [],
                    "options": {"path": {"type": "path", "required": True}, **_ATTRS}},
    "commands": {"type": "list", "elements": "dict", "default": [],
                 "options": {"argv": {"type": "list", "elements": "str", "required": True},
                             "stdout": {"type": "str", "required": True}}},
    "force": {"type": "bool", "default": False},
}


def _read(argv):
    """Stdout of a read-only command, or None when it cannot run or fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def package_drift(names):
    if not names:
        return []
    # dpkg-query exits 1 when a name is unknown but still lists the others: read stdout anyway.
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n", "--",
                           *names], capture_output=True, text=True, check=False)
    status = dict(x.split("\t", 1) for x in proc.stdout.splitlines() if "\t" in x)
    return [f"package {n} is not installed" for n in names if status.get(n) != "installed"]


def _norm_locale(name):
    return name.lower().replace("-", "")


def locale_drift(names):
    if not names:
        return []
    present = {_norm_locale(x) for x in (_read(["locale", "-a"]) or "").split()}
    return [f"locale {n} is not generated" for n in names if _norm_locale(n) not in present]


def attr_drift(path, st, want):
    """owner/group/mode differences of PATH (stat ST) against WANT."""
    drift = []
    if want.get("owner") and _name(pwd.getpwuid, st.st_uid) != want["owner"]:
        drift.append(f"{path}: owner is not {want['owner']}")
    if want.get("group") and _name(grp.getgrgid, st.st_gid) != want["group"]:
        drift.append(f"{path}: group is not {want['group']}")
    if want.get("mode") and stat.S_IMODE(st.st_mode) != int(want["mode"], 8):
        drift.append(f"{path}: mode is {stat.S_IMODE(st.st_mode):04o}, not {want['mode']}")
    return drift


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def line_drift(want):
    path = want["path"]
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        st = os.stat(path)
    except OSError:
        return [f"{path} is missing"]
    pattern = re.compile(want["regexp"])
    matches = [x for x in lines if pattern.search(x)]
    ok = matches[-1] == want["line"] if matches else want["line"] in lines
    drift = [] if ok else [f"{path}: no line {want['line']!r}"]
    return drift + attr_drift(path, st, want)


def link_drift(want):
    try:
        target = os.readlink(want["path"])
    except OSError:
        return [f"{want['path']} is not a link"]
    return [] if target == want["src"] else [f"{want['path']} points at {target}, not {want['src']}"]


def file_drift(want):
    path = want["path"]
    try:
        st = os.stat(path)
    except OSError:
        return [f"{path} is missing"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{path} is not a regular file"]
    drift = attr_drift(path, st, want)
    if want.get("sha256"):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != want["sha256"]:
            drift.append(f"{path}: content differs")
    return drift


def directory_drift(want):
    try:
        st = os.stat(want["path"])
    except OSError:
        return [f"{want['path']} is missing"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{want['path']} is not a directory"]
    return attr_drift(want["path"], st, want)


def command_drift(want):
    out = _read(want["argv"])
    got = None if out is None else out.strip()
    if got == want["stdout"].strip():
        return []
    return [f"{' '.join(want['argv'])}: {'failed' if got is None else repr(got)}, "
            f"not {want['stdout']!r}"]


def probe(params):
    """Every difference between PARAMS (the declared state) and this machine."""
    drift = ["a full run was asked for"] if params["force"] else []
    drift += package_drift(params["packages"]) + locale_drift(params["locales"])
    for key, check in (("lines", line_drift), ("links", link_drift), ("files", file_drift),
                       ("directories", directory_drift), ("commands", command_drift)):
        for want in params[key]:
            drift += check(want)
    return drift


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(changed=False, drift=probe(module.params))


if __name__ == "__main__":
    main()
