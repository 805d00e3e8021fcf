# aks-istio: `make plan` and `make test` are all a fresh machine needs (Python 3.11 and pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
FORMAT ?= text
# Local state by default; set PULUMI_BACKEND_URL to azblob://<container>?storage_account=<account> or
# https://api.pulumi.com to share state (see docs/operations.md).
PULUMI_BACKEND_URL ?= file://$(CURDIR)/state
export PULUMI_BACKEND_URL

# What planning needs, and what the tests and linters add; set-up progress goes to stderr, so that
# `make plan FORMAT=json > plan.json` writes only the plan. Both come from the hash-pinned lock files
# (requirements.lock, requirements-dev.lock), the same pins CI's deploys install: what is tested is what
# deploys. The requirements*.txt files hold the allowed ranges; `make lock` turns them into the locks.
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off
# pip-compile's flags for every lock: exact pins with the sha256 of every file of each release, pip and
# setuptools included (they install the repository's own package), no index or find-links lines (the locks
# name packages, not where a machine found them).
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)

.PHONY: help plan test lint lock preview up bench restart-plan clean
.DEFAULT_GOAL := help

help: ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: STACK=<stack> (default dev; one of: $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))), FORMAT=text|json|mermaid|istio-operator"

# The repository's own package (`-e .` in requirements.txt) from the checkout, without dependencies (the
# lock has them) and built by the lock's setuptools, so nothing unpinned is fetched for it.
$(RUNTIME): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock (first run: a few minutes)" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(PIP_INSTALL) --require-hashes -r requirements.lock >&2
	@$(PIP_INSTALL) --no-deps --no-build-isolation -e . >&2
	@touch $@

$(DEV): $(RUNTIME) requirements-dev.lock
	@echo "adding the test and lint tools of requirements-dev.lock" >&2
	@$(PIP_INSTALL) --require-hashes -r requirements-dev.lock >&2
	@touch $@

plan: $(RUNTIME) ## the stack's desired state, offline (STACK, FORMAT)
	@$(BIN)/python -m offline --stack $(STACK) --format $(FORMAT)

restart-plan: $(RUNTIME) ## read-only: which workloads the next `pulumi up` re-injects (KUBECONFIG names the cluster)
	@$(BIN)/python -m restart --stack $(STACK)

test: $(DEV) ## the whole test suite
	$(BIN)/python -m pytest

lint: $(DEV) ## ruff, mypy and the workflows' schema and security audit
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict components settings restart aks_istio_outputs benchmarks
	.ci/lint-workflows

# requirements-dev.txt is resolved against requirements.lock (`-c`), so both locks pin a shared package alike.
# pip-compile keeps a lock's pins that still satisfy the ranges; UPGRADE=1 moves them to the newest allowed.
lock: $(DEV) ## refresh the hash-pinned lock files from the requirements files (UPGRADE=1: newest versions)
	{ grep -v '^-e ' requirements.txt; echo 'setuptools>=69'; } | $(PIP_COMPILE) --output-file requirements.lock -
	$(PIP_COMPILE) --output-file requirements-dev.lock requirements-dev.txt
	$(PIP_COMPILE) --output-file policy/requirements.lock policy/requirements.txt

bench: $(DEV) ## benchmarks (the program under mocks; the restart on the real control plane)
	$(BIN)/python -m benchmarks.program_bench
	$(BIN)/python -m benchmarks.restart_bench --scenario ways --scenario slowstart --scenario planning

# `stack select --create` makes the first run on a new backend work; it is a no-op afterwards.
preview: $(RUNTIME) ## pulumi preview of STACK (needs the Pulumi CLI and Azure credentials)
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: see docs/operations.md" >&2; exit 2; }
	@mkdir -p state
	pulumi stack select --create $(STACK)
	pulumi preview --stack $(STACK) --diff

up: $(RUNTIME) ## pulumi up of STACK (needs the Pulumi CLI and Azure credentials)
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: see docs/operations.md" >&2; exit 2; }
	@mkdir -p state
	pulumi stack select --create $(STACK)
	pulumi up --stack $(STACK)

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache
