# AnKLuMe: the one small Incus client every anklume module shares.
# SPDX-License-Identifier: AGPL-3.0-or-later
"""Talk to Incus's REST API: the local daemon over its socket, a remote through the CLI.

The local remote is asked over its Unix socket (module_utils/incus_socket.py, ADR-096), a
remote through the client's raw REST verb, `incus query`: ``REMOTE:/1.0/...`` reaches a
cluster or a remote host with the client's certificates. Both answer alike, JSON in and
out. Every call that fails raises :class:`IncusError` with the text Incus itself
returned plus what we were doing, so a module can hand it straight to ``fail_json``.

The helpers below (markers, ownership, config and device diffs, plan entries) are
shared by the modules; module_utils/reconcile.py holds the reconcile skeleton (ADR-056).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import quote, urlencode

from ansible_collections.anklume.incus.plugins.module_utils import incus_socket
from ansible_collections.anklume.incus.plugins.module_utils.shared_reads import SharedReads

MANAGED_KEY = "user.anklume.managed"
OWNER_KEY = "user.anklume.owner"
# Operations one module runs at a time (ADR-022): measured on a 2-core machine, more
# only queue up inside incusd; the make variable PARALLEL=n overrides it.
DEFAULT_PARALLEL = 8


class IncusError(Exception):
    """An Incus call failed; ``str()`` is Incus's own error text with context."""


class OperationGone(IncusError):
    """Incus no longer knows the operation: it ended and was dropped (after ~5 s)."""


class Operation:
    """One asynchronous Incus call for :meth:`IncusClient.run_operations`.

    ``what`` names it in messages ("creating instance web in project pro"); the request
    is ``method path`` with ``data`` in ``project``, or ``start()``, a callable returning
    the operation id (an operation already running). ``verify()`` returns True once the
    object is in the final state the operation was to reach (instance running, deleted,
    snapshot present, ...), else False or a short reason; it is asked only when Incus
    forgot the operation before its result was read. Without it such an outcome is
    reported as unknown, a failure.
    """

    def __init__(self, what: str, path: str | None = None, method: str = "POST",
                 data: Any = None, project: str | None = None,
                 verify: Callable[[], bool | str] | None = None,
                 start: Callable[[], str | None] | None = None) -> None:
        self.what, self.path, self.method, self.data = what, path, method, data
        self.project, self.verify, self.start = project, verify, start


class IncusClient:
    """A thin client of one remote's REST API."""

    def __init__(self, remote: str | None = "local", binary: str = "incus",
                 timeout: int = 600, socket: str | None = None) -> None:
        self.remote = remote or "local"
        self.binary = binary
        # The local remote's socket (None: found as the client finds it); "" or another
        # remote: every call through `BINARY query`.
        if socket is None and self.remote == "local":
            socket = incus_socket.socket_path()
        self.socket = socket or ""
        self.timeout = timeout
        self.calls = 0
        # Operations whose result Incus had dropped, settled by their verify().
        self.recovered = 0
        self._lock = threading.Lock()
        # The bulk reads this playbook run shares between its tasks (ADR-077), if any.
        self.shared = SharedReads.of_run()

    # -- low level -----------------------------------------------------------
    def _url(self, path: str, project: str | None = None,
             params: Mapping[str, Any] | None = None) -> str:
        query = dict(params or {})
        if project:
            query["project"] = project
        url = path
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url if self.remote == "local" else f"{self.remote}:{url}"

    def query(self, path: str, method: str = "GET", data: Any = None,
              project: str | None = None, params: Mapping[str, Any] | None = None,
              wait: bool = True, what: str | None = None) -> Any:
        """Run one REST call; return the decoded JSON metadata (or None)."""
        url = self._url(path, project, params)
        if self.shared is not None:
            if method != "GET":
                self.shared.written()
            else:
                found, answer = self.shared.lookup(url)
                if found:
                    return answer
        answer = self._call(method, path, url, data, wait, what)
        if self.shared is not None and method == "GET":
            self.shared.keep(url, answer)
        return answer

    def _call(self, method: str, path: str, url: str, data: Any, wait: bool,
              what: str | None) -> Any:
        with self._lock:
            self.calls += 1
        if self.socket:
            try:
                return incus_socket.call(self.socket, method, url, data, wait, self.timeout)
            except incus_socket.CallError as exc:
                raise IncusError(f"{what or f'{method} {path}'}: {exc}") from exc
        cmd = [self.binary, "query", "-X", method]
        if wait:
            cmd.append("--wait")
        if data is not None:
            cmd += ["-d", json.dumps(data, sort_keys=True)]
        cmd.append(url)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise IncusError(f"{what or path}: the incus client is not installed ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise IncusError(f"{what or path}: incus query {method} {path} timed out "
                             f"after {self.timeout}s") from exc
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            if err.startswith("Error: "):
                err = err[len("Error: "):]
            raise IncusError("{}: {}".format(what or f"{method} {path}", err))
        out = proc.stdout.strip()
        if not out:
            return None
        try:
            return json.loads(out)
        except ValueError as exc:
            raise IncusError(f"{what or path}: unreadable answer from incus: {out[:200]}") from exc

    def get(self, path: str, project: str | None = None,
            params: Mapping[str, Any] | None = None, what: str | None = None) -> Any:
        return self.query(path, project=project, params=params, what=what)

    def start_operation(self, path: str, method: str, data: Any, project: str | None = None,
                        what: str | None = None) -> str | None:
        """Start an async call and return its operation id (no wait)."""
        op = self.query(path, method=method, data=data, project=project,
                        wait=False, what=what)
        if isinstance(op, dict) and op.get("id"):
            op_id: str = op["id"]
            return op_id
        return None

    def find(self, path: str, project: str | None = None, what: str | None = None) -> Any:
        """GET one object; None when Incus answers that it does not exist."""
        try:
            return self.get(path, project=project, what=what)
        except IncusError as exc:
            if "not found" in str(exc).lower():
                return None
            raise

    def wait_operation(self, op_id: str | None, what: str | None = None,
                       timeout: int = 600) -> Any:
        """Wait for an operation; raise with its error text if it failed, and
        :class:`OperationGone` when Incus has already dropped it."""
        if not op_id:
            return None
        try:
            op = self.query(f"/1.0/operations/{op_id}/wait", params={"timeout": timeout},
                            wait=False, what=what)
        except IncusError as exc:
            if "not found" in str(exc).lower():
                raise OperationGone(str(exc)) from exc
            raise
        if not isinstance(op, dict):
            return op
        code = op.get("status_code", 200)
        if code >= 400:
            raise IncusError("{}: {}".format(what or op_id, op.get("err") or op.get("status")))
        if code < 200:
            raise IncusError(f"{what or op_id}: still {op.get('status', 'running')} "
                             f"after {timeout}s")
        return op

    def run_operations(self, ops: Iterable[Operation], parallel: int | None = DEFAULT_PARALLEL,
                       progress: Callable[[str], object] | None = None, label: str = "",
                       timeout: int = 600) -> None:
        """Run every :class:`Operation`, at most ``parallel`` at a time (ADR-022).

        Each worker starts one operation and waits on it at once, so a result cannot be
        dropped while we wait on another one (Incus keeps a finished operation about
        5 s). Should it be gone all the same, the operation's ``verify()`` reads the
        object's final state and that is its outcome. ``progress(text)`` gets a line
        such as "created 20/50" each time ``parallel`` more have ended, on runs longer
        than one batch. Every operation runs; then :class:`IncusError` names each one
        that failed, with Incus's own text.
        """
        parallel = DEFAULT_PARALLEL if parallel is None else parallel
        if not isinstance(parallel, int) or parallel < 1:
            raise IncusError(f"parallel must be a whole number of at least 1, not {parallel!r} "
                             "(make PARALLEL=n, anklume_incus_parallel)")
        ops = list(ops)
        if not ops:
            return
        total, done, errors = len(ops), [0], []

        def one(op: Operation) -> None:
            error = self._run_one(op, timeout)
            with self._lock:
                done[0] += 1
                if error:
                    errors.append(error)
                if progress and total > parallel and (done[0] % parallel == 0
                                                      or done[0] == total):
                    failed = f" ({len(errors)} failed)" if errors else ""
                    progress(f"{label} {done[0]}/{total}{failed}".strip())

        with ThreadPoolExecutor(max_workers=min(parallel, total)) as pool:
            list(pool.map(one, ops))
        if errors:
            head = f"{len(errors)} of {total} operations failed: " if total > 1 else ""
            raise IncusError(head + "; ".join(sorted(errors)))

    def _run_one(self, op: Operation, timeout: int) -> str | None:
        """Start and wait for one operation; its error text, or None when it succeeded."""
        try:
            if op.start is not None:
                op_id = op.start()
            else:
                # Without start() an Operation has its request path (see Operation).
                path = cast(str, op.path)
                op_id = self.start_operation(path, op.method, op.data, op.project, op.what)
            self.wait_operation(op_id, what=op.what, timeout=timeout)
        except OperationGone:
            try:
                reached = op.verify() if op.verify else None
            except IncusError as exc:
                return f"{op.what}: Incus dropped the operation; reading the result failed: {exc}"
            if reached is True:
                with self._lock:
                    self.recovered += 1
                return None
            if reached is None:
                return (f"{op.what}: Incus dropped the operation before its result was read; "
                        "its outcome is unknown: check the object and run again")
            why = f" ({reached})" if isinstance(reached, str) and reached else ""
            return f"{op.what}: the operation ended without the expected result{why}"
        except IncusError as exc:
            return str(exc)
        return None

    # -- bulk reads ------------------------------------------------------------
    def networks(self) -> dict[str, dict[str, Any]]:
        items = self.get("/1.0/networks", params={"recursion": 1}, what="listing networks")
        return {n["name"]: n for n in items or []}

    def projects(self) -> dict[str, dict[str, Any]]:
        items = self.get("/1.0/projects", params={"recursion": 1}, what="listing projects")
        return {p["name"]: p for p in items or []}

    def profiles(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every profile of every project, keyed by (project, name)."""
        items = self.get("/1.0/profiles", params={"recursion": 1, "all-projects": "true"},
                         what="listing profiles") or []
        return {(p.get("project") or "default", p["name"]): p for p in items}

    def instances(self, state: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Every instance of every project keyed by name (names are unique)."""
        items = self.get("/1.0/instances",
                         params={"recursion": 2 if state else 1, "all-projects": "true"},
                         what="listing instances") or []
        return {(i.get("project") or "default", i["name"]): i for i in items}


def qname(name: str) -> str:
    return quote(name, safe="")


def is_managed(obj: Mapping[str, Any], owner: str | None) -> bool:
    """True when an object carries our marker for this anklume project."""
    config: Mapping[str, str] = obj.get("config") or {}
    if config.get(MANAGED_KEY) != "true":
        return False
    return owner is None or config.get(OWNER_KEY, "") == owner


def owner_of(obj: Mapping[str, Any]) -> str | None:
    """The anklume owner an object is marked with; None when it has no managed marker."""
    config: Mapping[str, str] = obj.get("config") or {}
    if config.get(MANAGED_KEY) != "true":
        return None
    return config.get(OWNER_KEY, "")


# How to hand an object over or adopt it, per kind: `incus <command> <name> key=value`.
_SET = {"network": "incus network set {name}",
        "project": "incus project set {name}",
        "profile": "incus profile set --project {project} {name}",
        "instance": "incus config set --project {project} {name}"}
_DELETE = {"network": "incus network delete {name}",
           "project": "incus project delete {name}",
           "profile": "incus profile delete --project {project} {name}",
           "instance": "incus delete --project {project} {name}"}


def ownership_problem(kind: str, name: str, obj: Mapping[str, Any], owner: str | None,
                      project: str | None = None) -> tuple[str, str] | None:
    """Why we may not reconcile an existing object under a declared name, or None.

    ``("conflict", text)``: it carries our managed marker with another owner (another
    anklume project): never changed nor deleted. ``("foreign", text)``: it exists
    without the marker (someone else's). The text is one line: object, owner, fix.
    """
    theirs = owner_of(obj)
    if theirs == (owner or ""):
        return None
    short = name.split("/", 1)[-1]
    names = {"name": short, "project": project or "default"}
    label = f"{kind} {name}" + (f" (project {project})" if kind == "instance" and project
                                else "")
    setcmd = _SET[kind].format(**names)
    delete = _DELETE[kind].format(**names)
    fix_rename = "rename the domain" if kind in ("network", "project") else \
        f"rename the {'machine' if kind == 'instance' else 'profile'}"
    if theirs is None:
        return ("foreign", f"{label} exists without the anklume marker (not ours): "
                f"{fix_rename} in infra.yml, delete it (`{delete}`) or adopt it explicitly "
                f"(`{setcmd} {MANAGED_KEY}=true {OWNER_KEY}={owner}`)")
    return ("conflict", f"{label} belongs to anklume project '{theirs}', not '{owner}': "
            f"{fix_rename} in infra.yml, delete it from '{theirs}' (`{delete}`) or hand it "
            f"over explicitly (`{setcmd} {OWNER_KEY}={owner}`)")


def owner_conflicts(kind: str,
                    objects: Iterable[tuple[str, Mapping[str, Any] | None, str | None]],
                    owner: str | None) -> list[dict[str, Any]]:
    """Plan entries for the declared objects another anklume project owns.

    ``objects``: (name, current object or None, project) for every object the caller is
    about to reconcile or delete. A module that finds any must fail before it writes.
    """
    out = []
    for name, obj, project in objects:
        if obj is None:
            continue
        problem = ownership_problem(kind, name, obj, owner, project)
        if problem and problem[0] == "conflict":
            entry = plan_entry(kind, name, "conflict", project=project)
            entry["reason"] = problem[1]
            out.append(entry)
    return out


def conflict_message(module_name: str, entries: Collection[Mapping[str, Any]]) -> str:
    """The fail_json text for ownership conflicts: one line per object."""
    return "{}: {} declared object(s) belong to another owner; nothing was changed:\n{}".format(
        module_name, len(entries), "\n".join(e["reason"] for e in entries))


def markers(owner: str | None) -> dict[str, str]:
    out = {MANAGED_KEY: "true"}
    if owner:
        out[OWNER_KEY] = owner
    return out


def stringify(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Incus stores every config value as a string."""
    out: dict[str, str] = {}
    for key, value in (config or {}).items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif value is None:
            out[key] = ""
        else:
            out[key] = str(value)
    return out


def config_changes(current: Mapping[str, str] | None, wanted: Mapping[str, str],
                   owned_prefixes: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """Keys to set (differ or missing) and keys to remove.

    ``wanted`` wins for every key it names; a current key it does not name is
    removed only when it starts with one of ``owned_prefixes`` (keys we manage
    fully); anything else (volatile.*, defaults Incus added) is left alone.
    """
    current = current or {}
    changed = sorted(k for k, v in wanted.items() if current.get(k) != v)
    removed = sorted(k for k in current if k not in wanted
                     and any(k.startswith(p) for p in owned_prefixes))
    return changed, removed


def devices_changes(current: Mapping[str, Any] | None,
                    wanted: Mapping[str, Any] | None) -> list[str]:
    current = current or {}
    wanted = wanted or {}
    keys = sorted(set(current) | set(wanted))
    return [f"devices.{k}" for k in keys
            if stringify(current.get(k)) != stringify(wanted.get(k)) or
            (k in current) != (k in wanted)]


def plan_entry(kind: str, name: str, action: str, keys: Iterable[str] | None = None,
               project: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "name": name, "action": action}
    if project:
        entry["project"] = project
    if keys:
        entry["keys"] = list(keys)
    return entry


def diff_entry(header: str, before: object, after: object) -> dict[str, str]:
    """One --diff block; before/after are YAML-ish dicts rendered as JSON."""
    def render(obj: object) -> str:
        if obj is None:
            return ""
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return {"before_header": header, "after_header": header,
            "before": render(before), "after": render(after)}


def ipv4s(inst: Mapping[str, Any]) -> list[str]:
    """The global IPv4 addresses of an instance read with recursion=2, sorted (lo left out)."""
    out: list[str] = []
    for name, net in ((inst.get("state") or {}).get("network") or {}).items():
        if name == "lo":
            continue
        out += [a["address"] for a in net.get("addresses") or []
                if a.get("family") == "inet" and a.get("scope") == "global"]
    return sorted(out)
