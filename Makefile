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
# PYTHONWARNINGS: cryptography 51 warns "DSA is deprecated" at every ansible-core start.
PLAYBOOK_ENV := ANSIBLE_PYTHON_INTERPRETER=$(abspath $(PY)) PATH=$(abspath $(BIN)):$$PATH \
	PYTHONWARNINGS='ignore:DSA is deprecated'
# A flag as the shell scripts read it: 1 or nothing (anklume/ops has refused other values).
FLAG = $(if $(filter 1 true yes,$(shell printf '%s' '$(1)' | tr A-Z a-z)),1)

# Every target's variables are checked by anklume/ops (ADR-071): a variable it does not read
# is refused in one line, flags read 1/true/yes or 0/false/no, DOMAIN=/I= name exactly what
# is acted on, and the targets that change Incus or the tree hold a lock. OPS runs a target
# in the virtualenv; CHECK (system Python, standard library only) checks a shell target's.
OPS     := $(PY) scripts/ops.py
CHECK   := python3 scripts/ops.py --check

.PHONY: help venv host image up sync sync-dry sync-clean test test-unit lint bench soak \
	apply apply-infra apply-provision apply-llm plan status graph destroy clean doctor use \
	shell exec logs start stop restart delete disp disp-clean gui gui-list gui-stop clip rollback copy \
	snapshot restore snapshot-delete snapshot-list backup backup-verify restore-backup \
	nftables nftables-deploy remote-image

help: ## List the targets by group, with every variable
	@python3 scripts/ops.py help

# A .venv without pip (python3-venv was missing when it was made) is made again.
ifeq ($(VENV),.venv)
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV) && python3 -m venv $(VENV); } || \
		{ echo "venv: python3 -m venv failed: install python3-venv (make host does)" >&2; rm -rf $(VENV); exit 2; }
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@
endif

venv: $(STAMP)
	@$(CHECK) venv

host:
	@$(CHECK) host && ANKLUME_INFRA=$(INFRA) bash scripts/host.sh

IMAGE   ?= anklume/debian-12
# The gui variant (ADR-091) only where a machine declares `gui: true` (read from the tree,
# or from the description before its first sync).
image:
	@$(CHECK) image && FORCE=$(call FLAG,$(FORCE)) bash scripts/build-image.sh $(IMAGE)
	@if grep -qsx 'instance_gui: true' host_vars/*.yml || grep -qsE '^\s+gui:\s*true' $(INFRA); \
	then FORCE=$(call FLAG,$(FORCE)) bash scripts/build-image-gui.sh $(IMAGE) $(IMAGE)-gui; fi

up: host image $(STAMP)
	@$(OPS) up

sync sync-dry sync-clean plan apply apply-infra apply-provision apply-llm status graph destroy \
snapshot restore snapshot-delete snapshot-list nftables nftables-deploy remote-image doctor \
use shell exec logs start stop restart delete disp disp-clean gui gui-list gui-stop clip rollback copy \
backup backup-verify restore-backup: $(STAMP)
	@$(OPS) $@

test: $(STAMP)
	@$(CHECK) test && bash scripts/test.sh

test-unit: $(STAMP)
	@$(CHECK) test-unit && $(BIN)/pytest -m unit -q

lint: $(STAMP)
	@$(CHECK) lint && bash scripts/lint.sh

.PHONY: collection
collection: $(STAMP)
	@$(CHECK) collection && bash scripts/collection.sh

bench: $(STAMP)
	@$(CHECK) bench && bash scripts/bench.sh

N       ?= 5
soak: $(STAMP)
	@$(CHECK) soak && bash scripts/soak.sh $(INFRA) $(N) $(call FLAG,$(FORCE))

clean:
	@$(CHECK) clean && rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis

# --- A remote Incus host (global.incus_remote, docs/remote-and-cluster.md) ---------------
.PHONY: remote-add remote-token remote-image
remote-add:
	@$(CHECK) remote-add && bash scripts/remote.sh add '$(REMOTE)' '$(TOKEN)'

remote-token:
	@$(CHECK) remote-token && bash scripts/remote.sh token '$(CLIENT)'

# --- The admin machine as the controller (ADR-062, docs/admin-controller.md) -------------
.PHONY: admin-tree
admin-tree: $(STAMP)
	@$(CHECK) admin-tree && $(PY) scripts/admin_tree.py $(if $(call FLAG,$(FORCE)),--force)

# --- Molecule: one scenario per role against the real local Incus (docs/testing.md) -----
# Each scenario owns its objects (t8* names, 10.170.x.0/24, owner t8mol). `molecule reset`
# first: a state file left by an interrupted run would make molecule skip create.
ROLE    ?=
MOLECULE_ROLES = $(or $(ROLE),$(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml)))
.PHONY: molecule
molecule: $(STAMP)
	@$(CHECK) molecule
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
test-runner-create: $(STAMP)
	@$(CHECK) test-runner-create && $(PLAYBOOK_ENV) $(BIN)/ansible-playbook test_runner.yml $(RUNNER_VARS)

test-sandboxed: $(STAMP)
	@$(CHECK) test-sandboxed && PYTHON=$(PY) RUNNER=$(RUNNER) RUNNER_PROJECT=$(RUNNER_PROJECT) ROLE=$(ROLE) TESTS='$(TESTS)' \
		DESTROY=$(call FLAG,$(DESTROY)) bash scripts/run-tests.sh

test-runner-destroy: $(STAMP)
	@$(CHECK) test-runner-destroy && $(PLAYBOOK_ENV) $(BIN)/ansible-playbook test_runner.yml $(RUNNER_VARS) -e dev_test_runner_state=absent

# --- LLM-assisted tests and development (docs/ai-testing.md, ADR-061) -------------------
# AI_MODE=none|local|remote|claude-code|aider (default none: exactly `make test`). Settings
# in anklume.conf.yml (key ai:), overridden by AI_<KEY> / ANKLUME_AI_<KEY>; keys from the
# environment only. dry_run (the default) only prints the proposed patch.
AI_MODE ?=
TASK    ?=
.PHONY: ai-test ai-develop
ai-test: $(STAMP)
	@$(CHECK) ai-test && PYTHON=$(PY) bash scripts/ai-test-loop.sh

ai-develop: $(STAMP)
	@$(CHECK) ai-develop && PYTHON=$(PY) bash scripts/ai-develop.sh
