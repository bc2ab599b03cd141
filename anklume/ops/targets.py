"""Every make target: its group in `make help`, the variables it reads, whether it takes
the lock and whether it needs root. The one table behind the help, the variable checks
and docs/make-targets.md (tests/unit/test_make_targets.py keeps the three in step).
"""

from __future__ import annotations

from dataclasses import dataclass

# Each variable, explained once (make help prints them under the targets).
VARIABLES: dict[str, str] = {
    "DOMAIN": "a domain, a template (its whole class), a pattern such as student*, or a comma list",
    "I": "an instance, or a comma list of instances",
    "LIMIT": "the old spelling of the scope: read as DOMAIN= for domains, I= for instances",
    "NAME": "a snapshot name (snapshot: default a UTC timestamp)",
    "FORCE": "flag: also act on protected things (ephemeral: false), or replace what exists",
    "PRUNE": "flag: also remove orphans (managed objects infra.yml no longer declares)",
    "FULL": "flag: run every provisioning task, read every instance's state afresh",
    "WAIT": "flag: wait for the lock another run holds instead of stopping",
    "TAGS": "Ansible tags of site.yml (networks, projects, profiles, instances, provision, ...)",
    "PARALLEL": "Incus operations run at a time (default 8)",
    "INFRA": "the description to render (default infra.yml); the tree is always the root one",
    "CMD": "the command to run in the instance, as one shell line",
    "APP": "gui: the desktop app to start in the machine, as one shell line",
    "EXAMPLE": "the name of a folder of examples/",
    "KEEP": "flag (use): leave the current instances as they are (they become orphans)",
    "DESTROY": "flag (use): destroy the current instances first, protected ones included; "
               "(test-sandboxed): delete the runner afterwards",
    "FIX": "flag: repair what is safe to repair and say what was done",
    "JSON": "flag: print the findings as JSON",
    "BOOT": "flag: also install the ruleset to be loaded at boot",
    "MODE": "nftables: file renders the rules only (from the admin machine)",
    "FROM": "nftables-deploy: admin reads the ruleset the admin machine rendered; copy: "
            "<instance>:<absolute path> of the file or folder to copy; clip: the gui machine "
            "whose clipboard text is copied",
    "TO": "copy: the instance that receives it, in /root/Incoming/<source instance>/; clip: "
          "the gui machine whose clipboard receives it",
    "NFT_FILE": "nftables-deploy: the ruleset file to load",
    "IMAGE": "the local image alias to build (default anklume/debian-12); disp: the image "
             "of the disposable (default the domain's)",
    "TTL": "disp: the disposable's longest life, e.g. 30m (default the domain's ttl, 1h)",
    "FILE": "disp: a file or directory of this host copied into the disposable first; "
            "backup-verify, restore-backup: the backup archive, or a pattern naming several "
            "(quoted: FILE='backups/student*')",
    "OUT": "disp: a directory of this host that receives what the command leaves in "
           "/root/Outgoing; backup: the directory of the archives (default backups/); "
           "graph: the SVG file to write (default graph.svg)",
    "ENCRYPT": "backup: encrypt with age to a recipient (age1...) or a file of recipients",
    "KEY": "backup-verify, restore-backup: the age identity file of an encrypted archive",
    "SNAPSHOTS": "flag (backup): include the instances' snapshots (default 1)",
    "N": "soak: cold applies in a row (default 5)",
    "REMOTE": "the name of an Incus remote (restore-backup: restore there)",
    "AS": "restore-backup: the domain of this tree that receives the backup (default its "
          "own)",
    "TOKEN": "a trust token printed by make remote-token",
    "CLIENT": "the name the token is for (the controller)",
    "ROLE": "one role (its Molecule scenario, or the role an LLM works on)",
    "TESTS": "pytest paths to run",
    "RUNNER": "the runner container's name (default anklume-runner)",
    "RUNNER_PROJECT": "the runner's Incus project (default dev-test)",
    "AI_MODE": "none, local, remote, claude-code or aider (settings: AI_<KEY>, anklume.conf.yml)",
    "AI_TEST_CMD": "the test command ai-test runs",
    "TASK": "what ai-develop implements, in words",
}

# Variables that are yes/no (makevars.flag reads them).
FLAGS = frozenset({"FORCE", "PRUNE", "FULL", "WAIT", "KEEP", "DESTROY", "FIX", "JSON", "BOOT",
                   "SNAPSHOTS"})
SCOPE = ("DOMAIN", "I", "LIMIT")
GROUPS = ("daily", "instances", "snapshots", "backups", "host", "remote and cluster", "development")


@dataclass(frozen=True)
class Target:
    name: str
    group: str
    help: str
    variables: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    locks: bool = False
    root: bool = False
    # Variables read from the environment by prefix (ai-test's AI_<KEY> settings).
    prefixes: tuple[str, ...] = ()
    # Ends in site.yml after a sync: ansible-playbook starts first, held (ADR-083).
    warm: bool = False


def _t(name: str, group: str, text: str, *variables: str, required: tuple[str, ...] = (),
       locks: bool = False, root: bool = False, prefixes: tuple[str, ...] = (),
       warm: bool = False) -> Target:
    return Target(name, group, text, tuple(variables), required, locks, root, prefixes, warm)


_APPLY = ("INFRA", *SCOPE, "PRUNE", "FULL", "PARALLEL", "WAIT")

TARGETS: dict[str, Target] = {t.name: t for t in (
    _t("up", "daily", "Bring up the description: host, image, sync, apply, status", "INFRA",
       locks=True, root=True),
    _t("sync", "daily", "Render infra.yml into inventory/, group_vars/, host_vars/", "INFRA",
       "WAIT", locks=True),
    _t("sync-dry", "daily", "Show the diff sync would apply; writes nothing", "INFRA"),
    _t("sync-clean", "daily", "Delete orphan generated files (protected ones need FORCE=1)",
       "INFRA", "FORCE", "WAIT", locks=True),
    _t("plan", "daily", "What apply would do (check mode + diff), then a one-line count",
       "INFRA", *SCOPE, "TAGS", "FULL", "PRUNE", warm=True),
    _t("apply", "daily", "Sync, then reconcile Incus and provision the instances", *_APPLY,
       "TAGS", locks=True, warm=True),
    _t("apply-infra", "daily", "Infrastructure phase only (apply TAGS=infra)", *_APPLY,
       locks=True, warm=True),
    _t("apply-provision", "daily", "Provision phase only (apply TAGS=provision)", *_APPLY,
       locks=True, warm=True),
    _t("apply-llm", "daily", "Apply only the machines with the ollama_server or open_webui role",
       "INFRA", "FULL", "PARALLEL", "WAIT", locks=True),
    _t("status", "daily", "Table of the declared instances: domain, instance, type, state, IP",
       "INFRA", "DOMAIN", "I", "LIMIT"),
    _t("graph", "daily", "Draw the isolation as SVG: domains in their colours, machines, "
       "allowed flows, ways out (Graphviz)", "INFRA", "OUT"),
    _t("destroy", "daily", "Delete what the scope declares (protected instances need FORCE=1)",
       "INFRA", *SCOPE, "FORCE", "PARALLEL", "WAIT", locks=True),
    _t("use", "daily", "Switch the tree to an example and show its plan (KEEP=1 or DESTROY=1 "
       "while instances exist)", "EXAMPLE", "KEEP", "DESTROY", "WAIT", required=("EXAMPLE",),
       locks=True),
    _t("doctor", "daily", "Say what is wrong with this host for AnKLuMe, with each fix",
       "INFRA", "FIX", "JSON"),
    _t("help", "daily", "This list"),
    _t("shell", "instances", "A shell in one instance", "I", required=("I",)),
    _t("exec", "instances", "Run CMD in one instance; fails with the command's exit status",
       "I", "CMD", required=("I", "CMD")),
    _t("disp", "instances", "A throwaway container in DOMAIN, under its isolation: CMD (or a "
       "shell), then it is deleted; fails with the command's exit status", "DOMAIN", "CMD",
       "IMAGE", "TTL", "FILE", "OUT", required=("DOMAIN",)),
    _t("disp-clean", "instances", "Delete the disposables no make disp serves any more "
       "(FORCE=1: every one, ready and in use)", "DOMAIN", "FORCE"),
    _t("gui", "instances", "Start APP in a gui machine: its windows open on this desktop, "
       "marked [domain] in the domain's colour (docs/desktop.md)", "I", "APP",
       required=("I", "APP")),
    _t("gui-list", "instances", "The gui machines: session device, xpra server, host client"),
    _t("gui-stop", "instances", "End a gui machine's session: its apps, its xpra server, the "
       "host client and the proxy device", "I", required=("I",)),
    _t("clip", "instances", "Copy the text in FROM's clipboard into TO's, two gui machines "
       "(clipboard_policies across domains; docs/desktop.md)", "FROM", "TO",
       required=("FROM", "TO")),
    _t("logs", "instances", "The console and instance log of one instance", "I",
       required=("I",)),
    _t("start", "instances", "Start the instances in scope", *SCOPE, "PARALLEL", "WAIT",
       locks=True),
    _t("stop", "instances", "Stop the instances in scope", *SCOPE, "PARALLEL", "WAIT",
       locks=True),
    _t("restart", "instances", "Restart the instances in scope", *SCOPE, "PARALLEL", "WAIT",
       locks=True),
    _t("delete", "instances", "Delete one instance (a protected one with FORCE=1), nothing else",
       "I", "FORCE", "WAIT", required=("I",), locks=True),
    _t("copy", "instances", "Copy FROM=<instance>:<path> into TO's /root/Incoming/<source>/ "
       "(file_policies across domains)", "FROM", "TO", required=("FROM", "TO")),
    _t("snapshot", "snapshots", "Snapshot the instances in scope (FORCE=1 replaces)", "INFRA",
       *SCOPE, "NAME", "FORCE", "PARALLEL", "WAIT", locks=True),
    _t("restore", "snapshots", "Restore snapshot NAME in scope (protected instances too)",
       "INFRA", *SCOPE, "NAME", "PARALLEL", "WAIT", required=("NAME",), locks=True),
    _t("snapshot-delete", "snapshots", "Delete snapshot NAME in scope", *SCOPE, "NAME",
       "PARALLEL", "WAIT", required=("NAME",), locks=True),
    _t("rollback", "snapshots", "Each instance in scope back to the snapshot an apply took "
       "before changing it (global.snapshot_before_apply)", *SCOPE, "WAIT", locks=True),
    _t("snapshot-list", "snapshots", "Table of snapshots: instance, snapshot, date", *SCOPE),
    _t("backup", "backups", "One archive per domain in scope: exports, infra.yml part, vars, "
       "manifest (docs/backups.md)", "DOMAIN", "I", "OUT", "ENCRYPT", "SNAPSHOTS", "WAIT",
       locks=True),
    _t("backup-verify", "backups", "Check every member of a backup archive; restores nothing",
       "FILE", "KEY", required=("FILE",)),
    _t("restore-backup", "backups", "Verify, then import a backup's instances into its "
       "domain's project (AS= another domain, REMOTE= another Incus; FORCE=1 replaces)",
       "FILE", "KEY", "AS", "REMOTE", "FORCE", "WAIT",
       required=("FILE",), locks=True),
    _t("host", "host", "Turn this machine into an Incus host (idempotent)", root=True),
    _t("image", "host", "Build and import the local Debian image, and its -gui variant where "
       "a machine declares gui: true (FORCE=1 rebuilds)", "IMAGE", "FORCE", "INFRA", root=True),
    _t("nftables", "host", "Sync, then render, check and load the isolation rules", "BOOT",
       "MODE", "WAIT", locks=True, root=True),
    _t("nftables-deploy", "host", "Load nftables/anklume.nft if it differs", "BOOT", "FROM",
       "NFT_FILE", "WAIT", locks=True, root=True),
    _t("venv", "host", "Create the virtualenv (.venv) with every tool pinned in pyproject.toml"),
    _t("clean", "host", "Remove caches (keeps .venv)"),
    # scripts/remote.sh checks its own arguments (and says what a token looks like).
    _t("remote-add", "remote and cluster", "Trust a remote Incus host", "REMOTE", "TOKEN"),
    _t("remote-token", "remote and cluster", "On the remote host: print a trust token",
       "CLIENT"),
    _t("remote-image", "remote and cluster", "Copy the images infra.yml uses to its "
       "incus_remote when missing", "WAIT", locks=True),
    _t("admin-tree", "remote and cluster", "Copy this tree into the admin machine (FORCE=1 "
       "moves its own aside)", "FORCE"),
    _t("test", "development", "Whole suite: unit + integration on the real Incus", root=True),
    _t("test-unit", "development", "Unit tests only (no daemon)"),
    _t("lint", "development", "ansible-lint, yamllint, ruff, shellcheck, mypy: all at zero"),
    _t("collection", "development", "Build the collection, install it apart, ansible-test "
       "sanity"),
    _t("bench", "development", "Benchmarks with figures", root=True),
    _t("soak", "development", "N cold applies in a row of INFRA (FORCE=1 if it exists)",
       "INFRA", "N", "FORCE", root=True),
    _t("molecule", "development", "Molecule scenarios on the real Incus (ROLE= for one)",
       "ROLE", root=True),
    _t("test-runner-create", "development", "Create or update the Incus-in-Incus test runner",
       "RUNNER", "RUNNER_PROJECT"),
    _t("test-sandboxed", "development", "Tests inside the runner, results in logs/runner/",
       "ROLE", "TESTS", "DESTROY", "RUNNER", "RUNNER_PROJECT"),
    _t("test-runner-destroy", "development", "Delete the runner and its project", "RUNNER",
       "RUNNER_PROJECT"),
    _t("ai-test", "development", "Tests; on failure an LLM proposes a fix (dry run by default)",
       "AI_MODE", "ROLE", "AI_TEST_CMD", prefixes=("AI_", "ANKLUME_AI_")),
    _t("ai-develop", "development", "An LLM implements TASK on a branch and iterates", "TASK",
       "AI_MODE", "ROLE", prefixes=("AI_", "ANKLUME_AI_")),
)}


def accepts(target: Target, variable: str) -> bool:
    return variable in target.variables or any(variable.startswith(p) for p in target.prefixes)
