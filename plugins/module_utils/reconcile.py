# AnKLuMe: the reconcile skeleton and the result vocabulary of the Incus modules (ADR-056).
# SPDX-License-Identifier: AGPL-3.0-or-later
"""What every anklume Incus module returns, and the one reconcile loop of the object modules.

Result vocabulary (ADR-056), the same keys in every module that talks to Incus:

* ``plan``: one entry per object acted on or reported, ``{kind, name, action}`` plus
  ``project`` (objects that live in a project), ``keys`` (what a change touches) and
  ``reason`` (a conflict's one-line explanation);
* ``orphans``: managed objects no longer declared (object modules);
* ``diff``: the --diff blocks; ``incus_calls``: Incus REST calls made;
* on failure ``msg`` (one line per problem) and ``step`` (what we were doing).

:class:`Reconciliation` holds one run's result; :class:`ObjectReconciler` is the skeleton
shared by incus_network, incus_project, incus_profile and incus_instance: orphans, the
owner check, create / foreign / change per declared object, then delete (state absent or
pruned) with the managed check and the keep guard. A module says only what differs per
kind. :func:`run_module` and :func:`run_check` are the two bodies of a module's main().
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusClient,
    IncusError,
    config_changes,
    conflict_message,
    diff_entry,
    is_managed,
    markers,
    owner_conflicts,
    plan_entry,
    stringify,
)

# The options that doc fragments document (plugins/doc_fragments/), said once here too.
REMOTE_OPTION: dict[str, dict[str, Any]] = {"remote": {"type": "str", "default": "local"}}
# The declared instances in scope, as the read-only checks take them (incus_cluster,
# incus_vm_support, incus_gpu): each reads the keys it needs (doc fragment anklume.incus.scope).
SCOPE_OPTION: dict[str, dict[str, Any]] = {"instances": {
    "type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str", "required": True},
        "project": {"type": "str", "default": "default"},
        "type": {"type": "str", "default": "lxc"},
        "target": {"type": "str", "default": ""},
    }}}
RECONCILE_OPTIONS: dict[str, dict[str, Any]] = {
    "declared": {"type": "list", "elements": "str", "default": []},
    "report_orphans": {"type": "bool", "default": False},
    "owner": {"type": "str", "default": ""},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "pruned"]},
    **REMOTE_OPTION,
}


class Wanted(NamedTuple):
    """What a declared object must hold: config (with our markers), description, devices."""

    config: dict[str, str]
    description: str
    devices: dict[str, dict[str, str]]


# An AnsibleModule, or the stand-in of the in-process action plugin or of the unit tests.
Module = Any
# An object's key in read()'s mapping: its name, or (project, name).
Key = Any
Spec = dict[str, Any]
Obj = dict[str, Any]
Entry = dict[str, Any]


class Reconciliation:
    """One module run: the plan, diffs, warnings and orphans it returns.

    ``run(body)`` calls ``body()``; an :class:`IncusError` becomes ``fail_json`` with
    the plan so far and ``step`` (what we were doing), anything else ends with
    ``exit_json`` (changed, plan, orphans, diff, the extra keys ``body`` returns,
    incus_calls). ``client`` is an :class:`IncusClient`, or a stand-in in unit tests.
    """

    def __init__(self, module: Module, name: str, step: str, client: Any = None) -> None:
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.name = name
        self.client: IncusClient = client or IncusClient(module.params["remote"])
        self.plan: list[Entry] = []
        self.diffs: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.orphans: list[str] = []
        self.changed = False
        self.step = step

    def change(self, entry: Entry, diff: dict[str, Any] | None = None) -> None:
        """Record one create, change or remove (and its --diff block)."""
        self.plan.append(entry)
        if diff is not None:
            self.diffs.append(diff)
        self.changed = True

    def note(self, entry: Entry, warning: str | None = None) -> None:
        """Record an entry that changes nothing (foreign, keep, orphan) and its warning."""
        self.plan.append(entry)
        if warning:
            self.warnings.append(warning)

    def check_owners(self, kind: str, objects: list[tuple[str, Obj | None, str | None]]) -> None:
        """ADR-021: fail before any write when another anklume project owns one of
        ``objects`` ((name, current object or None, project) triples)."""
        conflicts = owner_conflicts(kind, objects, self.params["owner"])
        if conflicts:
            self.fail(conflict_message(self.name, conflicts), plan=conflicts,
                      step="checking owners")

    def fail(self, msg: str, **extra: Any) -> None:
        """End the run: ``msg`` as given, with the plan so far unless ``extra`` says."""
        extra.setdefault("plan", self.plan)
        extra.setdefault("step", self.step)
        self.module.fail_json(msg=msg, **extra, incus_calls=self.client.calls)

    def run_operations(self, ops: list[Any], label: str, timeout: int = 600) -> None:
        """Run ``ops`` with the module's ``parallel`` and a progress line per batch
        ("incus_instance: created 20/50"); ``progress`` exists only when the module runs
        in the controller (ADR-013)."""
        self.client.run_operations(ops, self.params.get("parallel"),
                                   progress=getattr(self.module, "progress", None),
                                   label=f"{self.name}: {label}", timeout=timeout)

    def run(self, body: Callable[[], dict[str, Any] | None]) -> None:
        extra: dict[str, Any] = {}
        try:
            extra = body() or {}
        except IncusError as exc:
            self.fail(f"{self.name}: {exc}")
        for w in self.warnings:
            self.module.warn(w)
        self.module.exit_json(changed=self.changed, plan=self.plan, orphans=self.orphans,
                              diff=self.diffs, **extra, incus_calls=self.client.calls)


class ObjectReconciler(Reconciliation):
    """The reconcile skeleton of one object kind (ADR-056).

    A subclass sets ``KIND`` (plan kind), ``ITEMS`` (the option listing the declared
    objects) and ``READING`` (the first step), and says what differs per kind: how to
    read every object (``read``), key and name one (``key``, ``ident``), whether an
    undeclared one may be an orphan (``may_be_orphan``), how to ``create`` and ``update``
    one, what still uses it (``in_use``) and how to ``delete`` it.
    """

    KIND = ""
    ITEMS = ""
    READING = ""
    # The spec key holding the object's devices; "" for a kind that has none.
    DEVICES = ""
    # Whether a removal shows the object's config in --diff.
    DIFF_ON_REMOVE = True

    def __init__(self, module: Module, name: str, client: Any = None) -> None:
        super().__init__(module, name, self.READING, client)
        self.current: dict[Key, Obj] = {}

    # -- what differs per kind ---------------------------------------------------------
    def read(self) -> dict[Key, Obj]:
        """Every existing object of the kind, by key."""
        raise NotImplementedError

    def key(self, spec: Spec) -> Key:
        """The key of a declared object in ``read()``'s mapping."""
        return spec["name"]

    def ident(self, key: Key) -> str:
        """The object's name in ``declared`` and ``orphans`` (``project/name`` for an
        object that lives in a project)."""
        name: str = key  # a global object's key is its name
        return name

    def plan_name(self, key: Key) -> str:
        """The object's name in plan entries and messages."""
        return self.ident(key)

    def is_declared(self, key: Key, declared: set[str]) -> bool:
        return self.ident(key) in declared

    def orphan_order(self, key: Key) -> Any:
        return self.ident(key)

    def project(self, key: Key) -> str | None:
        """The Incus project an object lives in, None for a global object."""
        return None

    def may_be_orphan(self, key: Key, obj: Obj) -> bool:
        return True

    def before_changes(self, specs: list[Spec]) -> None:
        """A last check before the first write (state present); fail here to stop."""

    def wanted(self, spec: Spec) -> Wanted:
        """The declared config with our markers, description and devices of ``spec``."""
        config = stringify(spec.get("config"))
        config.update(markers(self.params["owner"]))
        devices = {k: stringify(v) for k, v in (spec.get(self.DEVICES) or {}).items()} \
            if self.DEVICES else {}
        return Wanted(config, spec.get("description") or "", devices)

    def create(self, spec: Spec) -> None:
        raise NotImplementedError

    def update(self, spec: Spec, cur: Obj) -> None:
        raise NotImplementedError

    def in_use(self, key: Key, cur: Obj) -> str:
        """Why a managed object may not be deleted yet ("still used by ..."), or ""."""
        return ""

    def keep_reason(self, key: Key, cur: Obj) -> str:
        """Why a managed object stays: ``in_use``, asked only outside check mode."""
        return "" if self.check_mode else self.in_use(key, cur)

    def removal_diff(self, key: Key, cur: Obj) -> dict[str, Any] | None:
        """The --diff block of a removal, None for none."""
        if not self.DIFF_ON_REMOVE:
            return None
        return diff_entry(self.label(key), {"config": cur.get("config")}, None)

    def delete(self, key: Key, cur: Obj) -> None:
        raise NotImplementedError

    # Config keys (prefixes) besides our markers that anklume alone sets on this kind: one
    # present but no longer declared is removed (raw.dnsmasq on a bridge, ADR-066).
    OWNED_KEYS: tuple[str, ...] = ()

    def put_config(self, name: str, path: str, cur: Obj, config: dict[str, str],
                   desc: str) -> None:
        """Bring CUR's config (our keys; the user.anklume.* markers kept) and description
        to CONFIG and DESC with one PUT to PATH; nothing when they already match."""
        keys, removed = config_changes(cur.get("config"), config,
                                       ("user.anklume.", *self.OWNED_KEYS))
        if cur.get("description", "") != desc:
            keys.append("description")
        if not keys and not removed:
            return
        new_config = {k: v for k, v in (cur.get("config") or {}).items() if k not in removed}
        new_config.update(config)
        self.change(self.entry(name, "change", keys + removed),
                    diff_entry(f"{self.KIND} {name}",
                               {"config": cur.get("config"),
                                "description": cur.get("description", "")},
                               {"config": new_config, "description": desc}))
        if not self.check_mode:
            self.step = f"updating {self.KIND} {name}"
            self.put(path, {"config": new_config, "description": desc})

    def put(self, path: str, data: dict[str, Any]) -> None:
        """The PUT of put_config (a kind whose updates meet a known race retries it)."""
        self.client.query(path, "PUT", what=self.step, data=data)

    # -- the skeleton --------------------------------------------------------------------
    def entry(self, key: Key, action: str, keys: list[str] | None = None) -> Entry:
        return plan_entry(self.KIND, self.plan_name(key), action, keys,
                          project=self.project(key))

    def label(self, key: Key) -> str:
        return f"{self.KIND} {self.plan_name(key)}"

    def find_orphans(self, specs: list[Spec]) -> list[Key]:
        declared = set(self.params["declared"]) | {self.ident(self.key(s)) for s in specs}
        owner = self.params["owner"] or None
        return sorted((key for key, obj in self.current.items()
                       if not self.is_declared(key, declared) and self.may_be_orphan(key, obj)
                       and is_managed(obj, owner)), key=self.orphan_order)

    def extra(self) -> dict[str, Any]:
        """Keys of the module's own that the result carries beside the vocabulary."""
        return {}

    def reconcile(self) -> dict[str, Any]:
        p = self.params
        specs = p[self.ITEMS]
        self.current = self.read()
        orphans = []
        if p["report_orphans"] or p["state"] == "pruned":
            orphans = self.find_orphans(specs)
        self.orphans = [self.ident(k) for k in orphans]
        if p["state"] in ("present", "absent"):
            # ADR-021: another anklume project's object is never changed nor deleted.
            self.check_owners(self.KIND, [
                (self.plan_name(self.key(s)), self.current.get(self.key(s)),
                 self.project(self.key(s))) for s in specs])
        if p["state"] == "present":
            self.before_changes(specs)
            self.present(specs)
            for key in orphans:
                self.note(self.entry(key, "orphan"))
        elif p["state"] == "absent":
            self.remove([self.key(s) for s in specs])
        else:
            self.remove(orphans)
        return self.extra()

    def present(self, specs: list[Spec]) -> None:
        for spec in specs:
            self.present_one(spec)

    def present_one(self, spec: Spec) -> None:
        key = self.key(spec)
        cur = self.current.get(key)
        if cur is None:
            self.create(spec)
        elif not is_managed(cur, None):
            self.note(self.entry(key, "foreign"),
                      f"{self.label(key)} exists without the anklume marker: left alone")
        else:
            self.update(spec, cur)

    def remove(self, keys: list[Key]) -> None:
        for key in keys:
            cur = self.current.get(key)
            if cur is None:
                continue
            if not is_managed(cur, None):
                self.warnings.append(f"{self.label(key)} is not managed by anklume: not deleted")
                continue
            busy = self.keep_reason(key, cur)
            if busy:
                self.note(self.entry(key, "keep"), f"{self.label(key)} kept: {busy}")
                continue
            self.change(self.entry(key, "remove"), self.removal_diff(key, cur))
            if not self.check_mode:
                self.step = f"deleting {self.label(key)}"
                self.delete(key, cur)


class ProjectObjectReconciler(ObjectReconciler):
    """The skeleton for objects that live in a project (profiles, instances): keyed by
    (project, name), named ``project/name`` in ``declared`` and ``orphans``."""

    def key(self, spec: Spec) -> tuple[str, str]:
        return (spec["project"], spec["name"])

    def ident(self, key: tuple[str, str]) -> str:
        return "{}/{}".format(*key)

    def project(self, key: tuple[str, str]) -> str | None:
        return key[0]


def ansible_module(module: Module | None, spec: dict[str, Any]) -> Module:
    """The module a main() works with. Every main() is ``main(module=None, client=None)``:
    the anklume action plugin passes its in-process stand-in for AnsibleModule (ADR-013),
    unit tests a client standing in for the remote's IncusClient; run by Ansible as a
    plain module, main() gets neither and builds AnsibleModule from the module's spec."""
    if module is not None:
        return module
    return AnsibleModule(argument_spec=spec, supports_check_mode=True)


def run_module(spec: dict[str, Any], reconciler_class: type[ObjectReconciler], name: str,
               module: Module | None = None, client: Any = None) -> None:
    """main() of an object module: reconcile, then exit in the result vocabulary."""
    rec = reconciler_class(ansible_module(module, spec), name, client)
    rec.run(rec.reconcile)


def run_check(spec: dict[str, Any], name: str, check: Callable[[Module, Any], dict[str, Any]],
              module: Module | None = None, client: Any = None) -> None:
    """main() of a read-only check (incus_gpu, incus_ready): ``check(module, client)`` is
    the result; an Incus error fails the task with one line naming the module."""
    module = ansible_module(module, spec)
    client = client or IncusClient(module.params["remote"])
    try:
        result = check(module, client)
    except IncusError as exc:
        module.fail_json(msg=f"{name}: {exc}")
    module.exit_json(**result, incus_calls=client.calls)
