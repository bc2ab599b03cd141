"""FakeIncus, an in-memory stand-in for IncusClient, and a way to run a module on it.

FakeIncus stands in for the Incus daemon ONLY to unit-test the pure logic of the
modules: the reconcile skeleton (orphans, owner check, create / foreign / change, the
in-use guard), the config and device diffs, instance drift, and the plans and requests
that follow. It holds the objects a test gives it, answers the bulk reads, and records
every write (and every batch of operations) instead of doing it: nothing changes, no
operation runs, nothing fails the way Incus would. How the real daemon behaves is
tested against it in tests/integration/ (test_reconcile.py, test_snapshot.py, ...).
"""

from __future__ import annotations

import copy
import importlib
import sys
from types import ModuleType
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests.incus_helpers import REPO

# The modules import each other by their collection path (collections/ links the repo in).
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))
MODULES = "ansible_collections.anklume.incus.plugins.modules."
MANAGED = {"user.anklume.managed": "true", "user.anklume.owner": "anklume"}


def module(name: str) -> ModuleType:
    return importlib.import_module(MODULES + name)


def managed(config: dict[str, str] | None = None, owner: str = "anklume") -> dict[str, str]:
    """A config carrying our marker for ``owner``, plus ``config``."""
    return {"user.anklume.managed": "true", "user.anklume.owner": owner, **(config or {})}


class FakeIncus:
    """An in-memory stand-in for IncusClient (see the module docstring for its limits)."""

    def __init__(self, networks: list[dict] | None = None, projects: list[dict] | None = None,
                 profiles: list[dict] | None = None, instances: list[dict] | None = None,
                 members: list[str] | None = None) -> None:
        self.nets = {n["name"]: n for n in networks or []}
        self.projs = {p["name"]: p for p in projects or []}
        self.profs = {(p.get("project", "default"), p["name"]): p for p in profiles or []}
        self.insts = {(i.get("project", "default"), i["name"]): i for i in instances or []}
        self.calls = 0
        # Each bulk read of the instances: with their state (recursion=2) or not.
        self.state_reads: list[bool] = []
        self.writes: list[tuple[str, str, str | None, Any]] = []
        self.waves: list[list[str]] = []
        # Cluster member names; None: a single server (GET /1.0 says not clustered).
        self.members = members

    # -- the reads IncusClient offers -----------------------------------------------------
    def networks(self) -> dict:
        self.calls += 1
        return copy.deepcopy(self.nets)

    def projects(self) -> dict:
        self.calls += 1
        return copy.deepcopy(self.projs)

    def profiles(self) -> dict:
        self.calls += 1
        return copy.deepcopy(self.profs)

    def instances(self, state: bool = True) -> dict:
        self.calls += 1
        self.state_reads.append(state)
        found = copy.deepcopy(self.insts)
        if not state:  # recursion=1: Incus leaves out the state
            for inst in found.values():
                inst.pop("state", None)
        return found

    def get(self, path: str, project: str | None = None, params: dict | None = None,
            what: str | None = None) -> Any:
        self.calls += 1
        if path == "/1.0/instances":
            return copy.deepcopy(list(self.insts.values()))
        if path == "/1.0/operations":
            return {}
        if path == "/1.0":
            return {"environment": {"server_clustered": self.members is not None}}
        if path == "/1.0/cluster/members":
            return [{"server_name": m, "status": "Online"} for m in self.members or []]
        if path.startswith("/1.0/projects/"):
            return copy.deepcopy(self.projs[path.rsplit("/", 1)[-1]])
        raise AssertionError(f"FakeIncus does not answer GET {path}")

    def find(self, path: str, project: str | None = None, what: str | None = None) -> Any:
        return None

    # -- the writes, recorded -----------------------------------------------------------
    def query(self, path: str, method: str = "GET", data: Any = None, project: str | None = None,
              params: dict | None = None, wait: bool = True, what: str | None = None) -> Any:
        if method == "GET":
            return self.get(path, project, params, what)
        self.calls += 1
        self.writes.append((method, path, project, data))
        return None

    def run_operations(self, ops: Any, parallel: int | None = None, progress: Any = None,
                       label: str = "", timeout: int = 600) -> None:
        """Record one batch: these operations would be started and awaited together."""
        ops = list(ops)
        if ops:
            self.waves.append([op.what for op in ops])
            for op in ops:
                self.writes.append((op.method, op.path, op.project, op.data))


class Finished(Exception):
    """exit_json or fail_json was called; ``result`` is what the module returned."""

    def __init__(self, result: dict) -> None:
        super().__init__("module finished")
        self.result = result


class FakeModule:
    """The part of AnsibleModule the modules use, with parameters validated (and their
    defaults filled in) by the module's own ARGUMENT_SPEC, as Ansible does."""

    def __init__(self, spec: dict, params: dict, check_mode: bool = False) -> None:
        checked = ArgumentSpecValidator(spec).validate(params)
        if checked.error_messages:
            raise ValueError("; ".join(checked.error_messages))
        self.params = checked.validated_parameters
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def exit_json(self, **kwargs: Any) -> None:
        raise Finished(kwargs)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise Finished({**kwargs, "failed": True, "msg": msg})


def run(name: str, params: dict, client: FakeIncus, check_mode: bool = False) -> dict:
    """Run module ``name`` with ``params`` on ``client``; its result, with ``warnings``."""
    mod = module(name)
    fake = FakeModule(mod.ARGUMENT_SPEC, params, check_mode)
    try:
        mod.main(fake, client=client)
    except Finished as done:
        return {**done.result, "warnings": fake.warnings}
    raise AssertionError(f"{name} returned nothing")
