# The project's interface: `make demo` and `make test` are all a new user needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLUSTER := $(PYTHON) hack/cluster.py
KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig
export KUBECONFIG

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: install
install: $(BIN)/python ## Create .venv with the operator and its dev tools.

.PHONY: build
build: ## Build the control-plane binaries (cached under ~/.cache/bentham).
	$(CLUSTER) build

.PHONY: cluster
cluster: ## Start the local control plane (idempotent); prints the kubeconfig path.
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane, keeping its data.
	$(CLUSTER) down

.PHONY: cluster-reset
cluster-reset: ## Stop the local control plane and wipe its data.
	$(CLUSTER) reset

.PHONY: crd
crd: install ## Regenerate crds/ from the pydantic models.
	$(BIN)/python -m bentham.api.crd > crds/bentham.io_studies.yaml

.PHONY: lint
lint: install ## ruff and mypy --strict.
	$(BIN)/ruff check operator tests hack
	$(BIN)/mypy

.PHONY: test
test: install lint ## The whole suite: lint, unit tests, and integration tests on the local control plane.
	$(BIN)/pytest

.PHONY: run
run: install ## Run the operator in the foreground against $KUBECONFIG (installs the CRD first).
	kubectl apply --server-side -f crds/
	kubectl wait --for=condition=Established crd/studies.bentham.io --timeout=60s
	$(BIN)/bentham-operator

.PHONY: demo
demo: install ## Start the local control plane, run the operator, and run the tiny example study to the end.
	hack/demo.sh
