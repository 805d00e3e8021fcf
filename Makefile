# aks-istio: `make plan` and `make test` are all a fresh machine needs (Python 3.11 and pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
FORMAT ?= text
# Local state by default; set PULUMI_BACKEND_URL to azblob://<container>?storage_account=<account> or
# https://api.pulumi.com to share state (see README, "Running against Azure").
PULUMI_BACKEND_URL ?= file://$(CURDIR)/state
export PULUMI_BACKEND_URL

.PHONY: plan test lint preview up bench restart-plan clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(BIN)/activate

plan: $(BIN)/activate
	@$(BIN)/python -m offline --stack $(STACK) --format $(FORMAT)

# Read-only: which workloads the next `pulumi up` would re-inject (KUBECONFIG names the cluster).
restart-plan: $(BIN)/activate
	@$(BIN)/python -m restart --stack $(STACK)

test: $(BIN)/activate
	$(BIN)/python -m pytest

lint: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict components settings restart aks_istio_outputs
	.ci/lint-workflows

bench: $(BIN)/activate
	$(BIN)/python -m benchmarks.program_bench
	$(BIN)/python -m benchmarks.restart_bench

# `stack select --create` makes the first run on a new backend work; it is a no-op afterwards.
preview: $(BIN)/activate
	@mkdir -p state
	pulumi stack select --create $(STACK)
	pulumi preview --stack $(STACK) --diff

up: $(BIN)/activate
	@mkdir -p state
	pulumi stack select --create $(STACK)
	pulumi up --stack $(STACK)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
