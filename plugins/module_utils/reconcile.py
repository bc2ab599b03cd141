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
shared by incus_network, incus_project and incus_profile: orphans, the owner check,
create / foreign / change per declared object, then delete (state absent or pruned) with
the managed check and the in-use guard. A module says only what differs per kind.
"""

from __future__ import annotations

from ansible_collections.anklume.incus.plugins.module_utils.incus_client import (
    IncusClient,
    IncusError,
    config_changes,
    conflict_message,
    diff_entry,
    is_managed,
    owner_conflicts,
    plan_entry,
)


class Reconciliation:
    """One module run: the plan, diffs, warnings and orphans it returns.

    ``run(body)`` calls ``body()``; an :class:`IncusError` becomes ``fail_json`` with
    the plan so far and ``step`` (what we were doing), anything else ends with
    ``exit_json`` (changed, plan, orphans, diff, the extra keys ``body`` returns,
    incus_calls). ``client`` is an :class:`IncusClient`, or a stand-in in unit tests.
    """

    def __init__(self, module, name, step, client=None):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.name = name
        self.client = client or IncusClient(module.params["remote"])
        self.plan, self.diffs, self.warnings, self.orphans = [], [], [], []
        self.changed = False
        self.step = step

    def change(self, entry, diff=None):
        """Record one create, change or remove (and its --diff block)."""
        self.plan.append(entry)
        if diff is not None:
            self.diffs.append(diff)
        self.changed = True

    def note(self, entry, warning=None):
        """Record an entry that changes nothing (foreign, keep, orphan) and its warning."""
        self.plan.append(entry)
        if warning:
            self.warnings.append(warning)

    def check_owners(self, kind, objects):
        """ADR-021: fail before any write when another anklume project owns one of
        ``objects`` ((name, current object or None, project) triples)."""
        conflicts = owner_conflicts(kind, objects, self.params["owner"])
        if conflicts:
            self.fail(conflict_message(self.name, conflicts), plan=conflicts,
                      step="checking owners")

    def fail(self, msg, **extra):
        """End the run: ``msg`` as given, with the plan so far unless ``extra`` says."""
        extra.setdefault("plan", self.plan)
        extra.setdefault("step", self.step)
        self.module.fail_json(msg=msg, **extra, incus_calls=self.client.calls)

    def run_operations(self, ops, label, timeout=600):
        """Run ``ops`` with the module's ``parallel`` and a progress line per batch
        ("incus_instance: created 20/50"); ``progress`` exists only when the module runs
        in the controller (ADR-013)."""
        self.client.run_operations(ops, self.params.get("parallel"),
                                   progress=getattr(self.module, "progress", None),
                                   label=f"{self.name}: {label}", timeout=timeout)

    def run(self, body):
        extra = {}
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
    # Whether a removal shows the object's config in --diff.
    DIFF_ON_REMOVE = True

    def __init__(self, module, name, client=None):
        super().__init__(module, name, self.READING, client)
        self.current = {}

    # -- what differs per kind ---------------------------------------------------------
    def read(self):
        """Every existing object of the kind, by key."""
        raise NotImplementedError

    def key(self, spec):
        """The key of a declared object in ``read()``'s mapping."""
        return spec["name"]

    def ident(self, key):
        """The object's name in ``declared`` and ``orphans`` (``project/name`` for an
        object that lives in a project)."""
        return key

    def plan_name(self, key):
        """The object's name in plan entries and messages."""
        return self.ident(key)

    def is_declared(self, key, declared):
        return self.ident(key) in declared

    def orphan_order(self, key):
        return self.ident(key)

    def project(self, key):
        """The Incus project an object lives in, None for a global object."""
        return None

    def may_be_orphan(self, key, obj):
        return True

    def before_changes(self, specs):
        """A last check before the first write (state present); fail here to stop."""

    def create(self, spec):
        raise NotImplementedError

    def update(self, spec, cur):
        raise NotImplementedError

    def in_use(self, key, cur):
        """Why a managed object may not be deleted yet ("still used by ..."), or ""."""
        return ""

    def delete(self, key, cur):
        raise NotImplementedError

    # Config keys (prefixes) besides our markers that anklume alone sets on this kind: one
    # present but no longer declared is removed (raw.dnsmasq on a bridge, ADR-066).
    OWNED_KEYS = ()

    def put_config(self, name, path, cur, config, desc):
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
            self.client.query(path, "PUT", what=self.step,
                              data={"config": new_config, "description": desc})

    # -- the skeleton --------------------------------------------------------------------
    def entry(self, key, action, keys=None):
        return plan_entry(self.KIND, self.plan_name(key), action, keys,
                          project=self.project(key))

    def label(self, key):
        return f"{self.KIND} {self.plan_name(key)}"

    def find_orphans(self, specs):
        declared = set(self.params["declared"]) | {self.ident(self.key(s)) for s in specs}
        owner = self.params["owner"] or None
        return sorted((key for key, obj in self.current.items()
                       if not self.is_declared(key, declared) and self.may_be_orphan(key, obj)
                       and is_managed(obj, owner)), key=self.orphan_order)

    def extra(self):
        """Keys of the module's own that the result carries beside the vocabulary."""
        return {}

    def reconcile(self):
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

    def present(self, specs):
        for spec in specs:
            self.present_one(spec)

    def present_one(self, spec):
        key = self.key(spec)
        cur = self.current.get(key)
        if cur is None:
            self.create(spec)
        elif not is_managed(cur, None):
            self.note(self.entry(key, "foreign"),
                      f"{self.label(key)} exists without the anklume marker: left alone")
        else:
            self.update(spec, cur)

    def remove(self, keys):
        for key in keys:
            cur = self.current.get(key)
            if cur is None:
                continue
            if not is_managed(cur, None):
                self.warnings.append(f"{self.label(key)} is not managed by anklume: not deleted")
                continue
            busy = "" if self.check_mode else self.in_use(key, cur)
            if busy:
                self.note(self.entry(key, "keep"), f"{self.label(key)} kept: {busy}")
                continue
            diff = diff_entry(self.label(key), {"config": cur.get("config")}, None) \
                if self.DIFF_ON_REMOVE else None
            self.change(self.entry(key, "remove"), diff)
            if not self.check_mode:
                self.step = f"deleting {self.label(key)}"
                self.delete(key, cur)


class ProjectObjectReconciler(ObjectReconciler):
    """The skeleton for objects that live in a project (profiles, instances): keyed by
    (project, name), named ``project/name`` in ``declared`` and ``orphans``."""

    def key(self, spec):
        return (spec["project"], spec["name"])

    def ident(self, key):
        return "{}/{}".format(*key)

    def project(self, key):
        return key[0]


def run_module(module, reconciler_class, name, client=None):
    """main() of an object module: reconcile, then exit in the result vocabulary."""
    rec = reconciler_class(module, name, client)
    rec.run(rec.reconcile)
