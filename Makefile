# AnKLuMe — the user interface. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Inside the admin machine (ADR-062) there is no PyPI: admin_bootstrap has installed the
# controller's virtualenv offline, and make uses it as is when the tree has no .venv.
CONTROLLER_VENV := /opt/anklume/ansible
ifeq ($(wildcard .venv/bin/python)$(wildcard $(CONTROLLER_VENV)/bin/ansible-playbook),$(CONTROLLER_VENV)/bin/ansible-playbook)
VENV    := $(CONTROLLER_VENV)
STAMP   := $(CONTROLLER_VENV)/bin/ansible-playbook
else
VENV    := .venv
STAMP   := $(VENV)/.installed
endif
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
INFRA   ?= infra.yml
IMAGE   ?= anklume/debian-12
PLAYBOOK_ENV := ANSIBLE_PYTHON_INTERPRETER=$(abspath $(PY)) PATH=$(abspath $(BIN)):$$PATH
TAGS    ?=
LIMIT   ?=
# The tree is always rendered at the root, where site.yml reads it, whatever INFRA names.
GENERATE := $(PY) scripts/generate.py $(INFRA) --output $(CURDIR)
ANSIBLE_ARGS := $(if $(TAGS),--tags $(TAGS)) $(if $(LIMIT),--limit $(LIMIT))

.PHONY: help venv host image up sync sync-dry sync-clean test test-unit test-incus lint bench soak \
	apply apply-infra apply-provision apply-llm plan status destroy clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

ifeq ($(VENV),.venv)
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@
endif

venv: $(STAMP) ## Create the virtualenv (.venv) with every tool pinned in pyproject.toml

host: ## Turn this machine into an Incus host (idempotent; root)
	@bash scripts/host.sh

image: ## Build and import the local Debian image (skipped if present; FORCE=1 rebuilds)
	@bash scripts/build-image.sh $(IMAGE)

up: host image $(STAMP) ## Bring up the shipped infra.yml: host, image, sync, apply, status
	@bash scripts/up.sh $(INFRA)

sync: $(STAMP) ## Render infra.yml into inventory/, group_vars/, host_vars/
	@$(GENERATE)

sync-dry: $(STAMP) ## Show the diff sync would apply; writes nothing
	@$(GENERATE) --dry-run

sync-clean: $(STAMP) ## Delete orphan files (protected ones need FORCE=1)
	@$(GENERATE) --clean-orphans $(if $(filter 1,$(FORCE)),--force)

test: $(STAMP) ## Whole suite: unit + integration on the real Incus (sets up host and image)
	@bash scripts/test.sh

test-unit: $(STAMP) ## Unit tests only (no daemon)
	@$(BIN)/pytest -m unit -q

lint: $(STAMP) ## ansible-lint (production), yamllint, ruff, shellcheck, mypy: all at zero
	@bash scripts/lint.sh

.PHONY: collection
collection: $(STAMP) ## Build the collection anklume.incus, install it apart, run a module, ansible-test sanity
	@bash scripts/collection.sh

bench: $(STAMP) ## Benchmarks (sync, apply, snapshots) with figures
	@bash scripts/bench.sh

N       ?= 5
soak: $(STAMP) ## N cold applies in a row of INFRA, each from nothing (N=20; FORCE=1 if it exists)
	@bash scripts/soak.sh $(INFRA) $(N) $(if $(filter 1 true yes,$(FORCE)),1)

clean: ## Remove caches (keeps .venv)
	@rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis

# --- Incus reconciliation (apply / plan / status / destroy) -----------------------------
# PRUNE=1 removes orphans (managed objects infra.yml no longer declares, never protected
# ones); FORCE=1 lets destroy delete protected instances. The anklume_plan callback prints
# what was (or, for plan, would be) created, changed and removed, then a one-line count.
# PARALLEL=n: Incus operations (create, start, stop, delete, snapshot) run at a time
# (anklume_incus_parallel, default 8, ADR-022), for apply, destroy and the snapshot targets.
PRUNE   ?=
FORCE   ?=
FULL    ?=
PARALLEL ?=
PARALLEL_VARS := $(if $(PARALLEL),-e anklume_incus_parallel=$(PARALLEL))
# Action and callback plugins come from ansible.cfg.
APPLY_ENV := $(PLAYBOOK_ENV)
# FULL=1: every provisioning task runs, whatever the roles' probes read (ADR-058).
APPLY_VARS := $(if $(filter 1 true yes,$(PRUNE)),-e anklume_prune=true) $(PARALLEL_VARS) \
	$(if $(filter 1 true yes,$(FULL)),-e anklume_state_probe=false)

apply: $(STAMP) ## Sync then reconcile Incus and provision (TAGS=networks, LIMIT=<domain>, PRUNE=1, PARALLEL=n, FULL=1)
	@$(GENERATE)
	@$(PY) scripts/remote_image.py
	@$(APPLY_ENV) $(BIN)/ansible-playbook site.yml $(ANSIBLE_ARGS) $(APPLY_VARS)

apply-infra: ## Infrastructure phase only (make apply TAGS=infra)
	@$(MAKE) --no-print-directory apply TAGS=infra

apply-provision: ## Provision phase only (make apply TAGS=provision)
	@$(MAKE) --no-print-directory apply TAGS=provision

apply-llm: $(STAMP) ## Apply only the machines with the ollama_server or open_webui role (their domains, then their roles)
	@$(GENERATE) --quiet
	@$(PY) scripts/remote_image.py
	@hosts=$$($(PY) scripts/llm_hosts.py) && \
		$(APPLY_ENV) $(BIN)/ansible-playbook site.yml --limit "$$hosts" $(APPLY_VARS)

plan: $(STAMP) ## What apply would do: check mode + diff, ends with a one-line count
	@$(GENERATE) --quiet
	@$(APPLY_ENV) $(BIN)/ansible-playbook site.yml --check --diff $(if $(TAGS),--tags $(TAGS),--tags infra) $(if $(LIMIT),--limit $(LIMIT)) $(APPLY_VARS)

status: $(STAMP) ## Table of the declared instances: domain, instance, type, state, IP
	@$(PY) scripts/status.py

destroy: $(STAMP) ## Delete what infra.yml declares (LIMIT= or DOMAIN=<domain, template or student*>; protected instances need FORCE=1)
	@$(GENERATE) --quiet
	@$(APPLY_ENV) $(BIN)/ansible-playbook site.yml --tags destroy $(if $(or $(DOMAIN),$(LIMIT)),--limit '$(or $(DOMAIN),$(LIMIT))') \
		$(if $(filter 1 true yes,$(FORCE)),-e anklume_force=true) $(PARALLEL_VARS)

# Host nftables isolation between domains (docs/network-isolation.md). BOOT=1 also installs
# the ruleset to be loaded at boot. From the admin container: MODE=file renders only, then
# `make nftables-deploy` (or scripts/deploy-nftables.sh) loads it on the host.
BOOT    ?=
MODE    ?=
.PHONY: nftables nftables-deploy
nftables: $(STAMP) ## Sync, then render, check and load the isolation rules (BOOT=1, MODE=file)
	@$(GENERATE)
	@$(PLAYBOOK_ENV) $(BIN)/ansible-playbook nftables.yml \
		$(if $(filter 1 true yes,$(BOOT)),-e incus_nftables_boot=true) \
		$(if $(MODE),-e incus_nftables_mode=$(MODE))

FROM    ?=
NFT_FILE ?=
nftables-deploy: ## On the host: check and load nftables/anklume.nft if it differs (root; FROM=admin reads the admin machine's)
	@PYTHON=$(PY) bash scripts/deploy-nftables.sh $(if $(filter 1 true yes,$(BOOT)),--install-boot) \
		$(if $(filter admin,$(FROM)),--from-admin) $(NFT_FILE)

# --- A remote Incus host (global.incus_remote, docs/remote-and-cluster.md) ---------------
# On the remote host: `make remote-token CLIENT=<controller>` prints a one-time trust token;
# on the controller: `make remote-add REMOTE=<name> TOKEN=<token>` (the token carries the
# server's address and certificate fingerprint). `make apply` copies the local images that
# infra.yml uses to the remote when it lacks them (make remote-image).
REMOTE  ?=
TOKEN   ?=
CLIENT  ?=
.PHONY: remote-add remote-token remote-image
remote-add: ## On the controller: trust a remote Incus host (REMOTE=<name> TOKEN=<token from make remote-token>)
	@bash scripts/remote.sh add '$(REMOTE)' '$(TOKEN)'

remote-token: ## On the remote Incus host: print a trust token for the controller (CLIENT=<name>)
	@bash scripts/remote.sh token '$(CLIENT)'

remote-image: $(STAMP) ## Copy the local images infra.yml uses to its incus_remote when missing (apply does it)
	@$(GENERATE) --quiet
	@$(PY) scripts/remote_image.py

# --- The admin machine as the controller (ADR-062, docs/admin-controller.md) -------------
.PHONY: admin-tree
admin-tree: $(STAMP) ## Copy this tree into the admin machine (once; FORCE=1 moves its own aside)
	@$(PY) scripts/admin_tree.py $(if $(filter 1 true yes,$(FORCE)),--force)

# --- Snapshots (snapshot.yml, roles/incus_snapshots) ------------------------------------
# Scope: every instance; DOMAIN= one domain, a template (its whole class), a pattern such as
# student* or a comma-separated list; or I=<instance>. One bulk Incus call per action, then
# a table of what it did. NAME defaults to a timestamp for `snapshot` only.
SNAPSHOT_ARGS = $(if $(NAME),-e incus_snapshots_name=$(NAME)) \
	$(if $(DOMAIN),-e 'incus_snapshots_domain=$(DOMAIN)') \
	$(if $(I),-e incus_snapshots_instance=$(I)) \
	$(if $(filter 1 true yes,$(FORCE)),-e '{"incus_snapshots_force": true}') $(PARALLEL_VARS)
SNAPSHOT_RUN = $(PLAYBOOK_ENV) $(BIN)/ansible-playbook snapshot.yml $(SNAPSHOT_ARGS) -e incus_snapshots_action=

.PHONY: snapshot restore snapshot-delete snapshot-list

snapshot: $(STAMP) ## Snapshot instances (NAME=x, default timestamped; DOMAIN=d|template|student* or I=i; FORCE=1 replaces)
	@$(GENERATE) --quiet
	@$(SNAPSHOT_RUN)create

restore: $(STAMP) ## Restore snapshot NAME=x (DOMAIN=d|template|student* or I=i; protected instances too)
	@test -n "$(NAME)" || { echo "restore: NAME=<snapshot> is required (see: make snapshot-list)" >&2; exit 2; }
	@$(GENERATE) --quiet
	@$(SNAPSHOT_RUN)restore

snapshot-delete: $(STAMP) ## Delete snapshot NAME=x (DOMAIN=d or I=i)
	@test -n "$(NAME)" || { echo "snapshot-delete: NAME=<snapshot> is required (see: make snapshot-list)" >&2; exit 2; }
	@$(SNAPSHOT_RUN)delete

snapshot-list: $(STAMP) ## Table of snapshots: instance, snapshot, date (DOMAIN=d or I=i)
	@$(SNAPSHOT_RUN)list

# --- Molecule: one scenario per role against the real local Incus (docs/testing.md) -----
# Each scenario owns its objects (t8* names, 10.170.x.0/24, owner t8mol). `molecule reset`
# first: a state file left by an interrupted run would make molecule skip create.
ROLE    ?=
MOLECULE_ROLES = $(or $(ROLE),$(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml)))
.PHONY: molecule
molecule: $(STAMP) ## Molecule scenarios of every role on the real Incus (ROLE=<name> for one)
	@set -e; for role in $(MOLECULE_ROLES); do \
		echo "molecule: roles/$$role"; \
		( cd roles/$$role && $(PLAYBOOK_ENV) molecule reset >/dev/null 2>&1 && $(PLAYBOOK_ENV) molecule test ); \
	done

# --- The Incus-in-Incus test runner (ADR-063, docs/testing.md) --------------------------
# A container with its own Incus, this tree and the tools, in its own project, no NIC.
# ROLE=<name>: one Molecule scenario; TESTS="<paths>": those pytest paths; neither: every
# Molecule scenario and integration test. DESTROY=1 deletes the runner afterwards.
RUNNER  ?= anklume-runner
RUNNER_PROJECT ?= dev-test
TESTS   ?=
DESTROY ?=
RUNNER_VARS := -e dev_test_runner_name=$(RUNNER) -e dev_test_runner_project_name=$(RUNNER_PROJECT)
.PHONY: test-sandboxed test-runner-create test-runner-destroy
test-runner-create: $(STAMP) ## Create or update the Incus-in-Incus test runner (RUNNER=, RUNNER_PROJECT=)
	@$(PLAYBOOK_ENV) $(BIN)/ansible-playbook test_runner.yml $(RUNNER_VARS)

test-sandboxed: $(STAMP) ## Tests inside the runner, results in logs/runner/ (ROLE=<name>, TESTS=, DESTROY=1)
	@PYTHON=$(PY) RUNNER=$(RUNNER) RUNNER_PROJECT=$(RUNNER_PROJECT) ROLE=$(ROLE) TESTS='$(TESTS)' \
		DESTROY=$(DESTROY) bash scripts/run-tests.sh

test-runner-destroy: $(STAMP) ## Delete the runner, its project, its profile and its host-side files
	@$(PLAYBOOK_ENV) $(BIN)/ansible-playbook test_runner.yml $(RUNNER_VARS) -e dev_test_runner_state=absent

# --- LLM-assisted tests and development (docs/ai-testing.md, ADR-061) -------------------
# AI_MODE=none|local|remote|claude-code|aider (default none: exactly `make test`). Settings
# in anklume.conf.yml (key ai:), overridden by AI_<KEY> / ANKLUME_AI_<KEY>; keys from the
# environment only. dry_run (the default) only prints the proposed patch.
AI_MODE ?=
TASK    ?=
.PHONY: ai-test ai-develop
ai-test: $(STAMP) ## Tests; on failure an LLM proposes a fix (AI_MODE=none|local|remote|claude-code|aider, ROLE=, AI_TEST_CMD=)
	@PYTHON=$(PY) bash scripts/ai-test-loop.sh

ai-develop: $(STAMP) ## An LLM implements TASK="..." on a branch, runs the tests, iterates (AI_MODE=..., ROLE=)
	@PYTHON=$(PY) bash scripts/ai-develop.sh
