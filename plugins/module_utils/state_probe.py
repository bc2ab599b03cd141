# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the state_probe module reads (ADR-058): plain Python, no Ansible import.

The state_probe action plugin sends this file's text to the instance's Python in one
`incus exec` (no AnsiballZ payload to build or unpack: about a quarter of a module task's
cost here); the module (plugins/modules/state_probe.py) imports it for any other use.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

# Each probe is a fresh Python in an instance, so its imports are paid every run (about
# half of its 55 ms there): typing is for the annotations only, hashlib and tempfile are
# imported where a digest or a record is written.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _start(argv: Sequence[str]) -> subprocess.Popen[str] | None:
    """ARGV started now and read later: the reads a probe runs start together, so that
    they run beside each other and beside the file checks."""
    try:
        return subprocess.Popen(list(argv), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def _output(proc: subprocess.Popen[str] | None, any_status: bool = False) -> str | None:
    """Stdout of a started command; None when it could not start, fails (unless
    ANY_STATUS) or takes over a minute."""
    if proc is None:
        return None
    try:
        out = proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if any_status or proc.returncode == 0 else None


def _read(argv: Sequence[str]) -> str | None:
    """Stdout of a read-only command, or None when it cannot run or fails."""
    return _output(_start(argv))


_DPKG = ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n", "--"]


def _package_drift(names: Sequence[str], listed: str | None) -> list[str]:
    """LISTED: dpkg-query's output for NAMES (it exits 1 when a name is unknown but still
    lists the others, so its output is read whatever its status)."""
    status = dict(x.split("\t", 1) for x in (listed or "").splitlines() if "\t" in x)
    return [f"package {n} is not installed" for n in names if status.get(n) != "installed"]


def _norm_locale(name: str) -> str:
    return name.lower().replace("-", "")


def locale_drift(names: Sequence[str]) -> list[str]:
    return _locale_drift(names, _read(["locale", "-a"]) if names else None)


def _locale_drift(names: Sequence[str], listed: str | None) -> list[str]:
    """LISTED: the output of `locale -a`."""
    present = {_norm_locale(x) for x in (listed or "").split()}
    return [f"locale {n} is not generated" for n in names if _norm_locale(n) not in present]


def attr_drift(path: str, st: os.stat_result, want: Mapping[str, Any]) -> list[str]:
    """owner/group/mode differences of PATH (stat ST) against WANT."""
    drift: list[str] = []
    if want.get("owner") and _name(pwd.getpwuid, st.st_uid) != want["owner"]:
        drift.append(f"{path}: owner is not {want['owner']}")
    if want.get("group") and _name(grp.getgrgid, st.st_gid) != want["group"]:
        drift.append(f"{path}: group is not {want['group']}")
    if want.get("mode") and stat.S_IMODE(st.st_mode) != int(want["mode"], 8):
        drift.append(f"{path}: mode is {stat.S_IMODE(st.st_mode):04o}, not {want['mode']}")
    return drift


def _name(lookup: Callable[[int], pwd.struct_passwd | grp.struct_group], ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def line_drift(want: Mapping[str, Any]) -> list[str]:
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


def link_drift(want: Mapping[str, Any]) -> list[str]:
    try:
        target = os.readlink(want["path"])
    except OSError:
        return [f"{want['path']} is not a link"]
    if target == want["src"]:
        return []
    return [f"{want['path']} points at {target}, not {want['src']}"]


# Where a probe run in an instance keeps the digests of the files it checks (ADR-082).
INSTANCE_DIGESTS = "/var/cache/anklume/probe-sha256.json"
# A file changed in the last seconds could change again within the same clock tick and
# keep its identity (git's "racy" entries): its digest is not kept.
SETTLED_NS = 2_000_000_000


def cached_sha256(path: str, record: str | None) -> str:
    """SHA-256 of PATH. With RECORD (a JSON file), the digest is kept there under the
    file's identity (device, inode, size, modification and change times: a write changes
    the last two, and the change time cannot be set back), so a file that did not change
    is not read again: the admin machine's 16 MB incus client cost 45 ms a run, in the
    instance's probe and on the controller alike. Raises OSError when PATH cannot be read."""
    info = os.stat(path)
    where = os.path.abspath(path)
    identity = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    known = read_record(record) if record else {}
    if known.get(where, {}).get("identity") == identity:
        return str(known[where]["sha256"])
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    settled = time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) > SETTLED_NS
    if record and settled:
        known[where] = {"identity": identity, "sha256": digest.hexdigest()}
        write_record(record, known)
    return digest.hexdigest()


def read_record(record: str) -> dict[str, Any]:
    """The JSON mapping kept in RECORD; {} when there is none or it is unreadable."""
    try:
        with open(record, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_record(record: str, known: dict[str, Any]) -> None:
    """Replace the record whole (a reader never sees half of it); a record that cannot be
    written only costs the next run a read of the file."""
    import tempfile

    try:
        os.makedirs(os.path.dirname(record), exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=os.path.dirname(record), prefix=".record.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(known, handle, sort_keys=True)
        os.replace(scratch, record)
    except OSError:
        pass


def file_drift(want: Mapping[str, Any], digests: str | None = None) -> list[str]:
    """DIGESTS: the record cached_sha256 keeps digests in (None: none kept)."""
    path = want["path"]
    try:
        st = os.stat(path)
    except OSError:
        return [f"{path} is missing"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{path} is not a regular file"]
    drift = attr_drift(path, st, want)
    if want.get("sha256") and cached_sha256(path, digests) != want["sha256"]:
        drift.append(f"{path}: content differs")
    return drift


def directory_drift(want: Mapping[str, Any]) -> list[str]:
    try:
        st = os.stat(want["path"])
    except OSError:
        return [f"{want['path']} is missing"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{want['path']} is not a directory"]
    return attr_drift(want["path"], st, want)


def _command_drift(want: Mapping[str, Any], out: str | None) -> list[str]:
    """OUT: the command's output (None: it failed)."""
    got = None if out is None else out.strip()
    if got == want["stdout"].strip():
        return []
    return [f"{' '.join(want['argv'])}: {'failed' if got is None else repr(got)}, "
            f"not {want['stdout']!r}"]


def _start_reads(params: Mapping[str, Any]) -> dict[str, Any]:
    """The commands a probe runs (dpkg-query, locale -a, its declared ones), started."""
    return {"packages": _start([*_DPKG, *params["packages"]]) if params["packages"] else None,
            "locales": _start(["locale", "-a"]) if params["locales"] else None,
            "commands": [_start(c["argv"]) for c in params["commands"]]}


def _drift(params: Mapping[str, Any], reads: Mapping[str, Any],
           digests: str | None) -> list[str]:
    drift = ["a full run was asked for"] if params["force"] else []
    drift += _package_drift(params["packages"], _output(reads["packages"], any_status=True))
    drift += _locale_drift(params["locales"], _output(reads["locales"]))
    checks: tuple[tuple[str, Callable[[Mapping[str, Any]], list[str]]], ...] = (
        ("lines", line_drift), ("links", link_drift),
        ("files", lambda want: file_drift(want, digests)), ("directories", directory_drift))
    for key, check in checks:
        for want in params[key]:
            drift += check(want)
    for index, want in enumerate(params["commands"]):
        drift += _command_drift(want, _output(reads["commands"][index]))
    return drift


def probe_all(all_params: Sequence[Mapping[str, Any]],
              digests: str | None = None) -> list[list[str]]:
    """Each probe's drift, in order. Every command of every probe starts first (they only
    read), then the files are checked while they run (ADR-078). DIGESTS: as file_drift's."""
    reads = [_start_reads(params) for params in all_params]
    return [_drift(params, reads[index], digests) for index, params in enumerate(all_params)]


def probe(params: Mapping[str, Any]) -> list[str]:
    """Every difference between PARAMS (the declared state) and this machine."""
    return probe_all([params])[0]
