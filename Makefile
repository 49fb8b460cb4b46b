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
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Exactly the lock file's versions (and hashes), then the operator itself without resolving anything.
$(BIN)/python: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

.PHONY: install
install: $(BIN)/python ## Create .venv with the operator and its dev tools.

.PHONY: build
build: ## Build the control-plane binaries (cached under ~/.cache/bentham).
	$(CLUSTER) build

# NODE=real adds the real node (kubelet, containerd, runc, a CNI bridge) beside the kwok nodes.
NODE ?= kwok

.PHONY: cluster
cluster: ## Start the local control plane (idempotent); prints the kubeconfig path. NODE=real adds a real node.
	$(CLUSTER) up --node $(NODE)

.PHONY: node
node: ## The local control plane with the real node (root; Debian's containerd, runc, CNI plugins, iptables).
	$(CLUSTER) up --node real

.PHONY: cluster-down
cluster-down: ## Stop the local control plane, keeping its data.
	$(CLUSTER) down

.PHONY: cluster-reset
cluster-reset: ## Stop the local control plane and wipe its data.
	$(CLUSTER) reset

PIP_TOOLS := pip-tools==7.6.2
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --generate-hashes --no-emit-index-url

# Three locks from one pyproject.toml: .venv/CI (the operator, the executor's SDKs and the dev tools),
# the operator's image and the reference executor's image. The dev lock is resolved first and decides
# every version; each image's lock starts as a copy of it, so pip-compile keeps those pins and only
# drops what that image does not need. Without UPGRADE=1 the dev lock keeps the pins it has and
# resolves only what is new; UPGRADE=1 re-resolves everything to the newest releases.
.PHONY: lock
lock: install ## Resolve pyproject.toml into requirements-dev.lock, requirements.lock and requirements-executor.lock (UPGRADE=1: newest).
	$(BIN)/pip install --quiet $(PIP_TOOLS)
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) --extra executor --extra dev --output-file requirements-dev.lock pyproject.toml
	cp requirements-dev.lock requirements.lock
	$(PIP_COMPILE) --output-file requirements.lock pyproject.toml
	cp requirements-dev.lock requirements-executor.lock
	$(PIP_COMPILE) --extra executor --output-file requirements-executor.lock pyproject.toml
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock

.PHONY: wheelhouse
wheelhouse: install ## The image locks' wheels and the project's own wheel into wheelhouse/ (what the Dockerfiles install).
	$(BIN)/python hack/images.py wheelhouse

.PHONY: image
image: install ## Build the operator's, the reference executor's and the stand-in executor's images (buildah); load them into the real node if it runs.
	$(BIN)/python hack/images.py build

.PHONY: e2e
e2e: install ## End to end on the real node: build and load the images, helm install the chart, run studies of real executor pods.
	$(CLUSTER) up --node real
	$(BIN)/pytest tests/e2e -p no:randomly

.PHONY: crd
crd: install ## Regenerate crds/ from the pydantic models.
	$(BIN)/python -m bentham.api.crd > crds/bentham.io_studies.yaml

.PHONY: lint
lint: install ## ruff and mypy --strict.
	$(BIN)/ruff check operator executor tests hack bench
	$(BIN)/ruff format --check operator executor tests hack bench
	$(BIN)/mypy

.PHONY: test
test: install lint ## The whole suite: lint, unit and integration tests, and beside them the e2e on the real node.
	$(BIN)/python hack/test.py

.PHONY: unit
unit: install ## Only the unit tests (no cluster, seconds): the inner loop.
	$(BIN)/pytest tests/unit

.PHONY: install-api
install-api: ## Install the Study API into $KUBECONFIG's cluster: the CRD and the legal-hold admission policy.
	kubectl apply --server-side -f crds/
	kubectl wait --for=condition=Established crd/studies.bentham.io --timeout=60s
	kubectl apply --server-side -f manifests/legal-hold.yaml

.PHONY: run
run: install install-api ## Run the operator in the foreground against $KUBECONFIG (installs the Study API first).
	$(BIN)/bentham-operator

.PHONY: demo
demo: install ## Start the local control plane, run the operator, and run the tiny example study to the end.
	hack/demo.sh

.PHONY: helm
helm: ## Build (or find in the cache) Helm from its Go module; prints the binary's path.
	@$(PYTHON) hack/helm.py build

.PHONY: lint-image
lint-image: install ## Lint the Dockerfiles (the operator's, the reference executor's and the stand-in's) with hadolint.
	$(BIN)/hadolint Dockerfile executor/Dockerfile executor/stand-in/Dockerfile

.PHONY: chart-crd
chart-crd: ## Copy the CRD into the Helm chart (after `make crd`; a unit test fails when they drift).
	cp crds/bentham.io_studies.yaml charts/bentham-operator/crds/bentham.io_studies.yaml

.PHONY: chart-test
chart-test: install ## Only the shipping tests: image lint, manifests, chart, GitOps, kubectl plugin, legal hold (the install docs run in `make e2e`).
	$(BIN)/pytest tests/unit/test_manifests.py tests/unit/test_argocd_health.py tests/unit/test_kubectl_study.py \
		tests/integration/test_chart.py tests/integration/test_gitops.py tests/integration/test_kubectl_plugin.py \
		tests/integration/test_legal_hold.py

.PHONY: legal-hold-policy
legal-hold-policy: ## Regenerate the legal-hold admission policy (manifests/ and the chart) from hack/legal_hold_policy.py.
	$(PYTHON) hack/legal_hold_policy.py manifests > manifests/legal-hold.yaml
	$(PYTHON) hack/legal_hold_policy.py chart > charts/bentham-operator/templates/legal-hold.yaml

.PHONY: argocd-cm-patch
argocd-cm-patch: ## Regenerate gitops/argocd/argocd-cm-patch.yaml from gitops/argocd/health.lua.
	$(PYTHON) hack/argocd_cm_patch.py > gitops/argocd/argocd-cm-patch.yaml

# Every run starts from a wiped copy, so that no run inherits the last one's etcd history.
BENCH_CLUSTER_DIR := $(CURDIR)/.cluster-bench
BENCH_ARGS ?=

.PHONY: bench
bench: install ## Benchmarks on a second control plane (.cluster-bench/), beside a raw-Job baseline; prints the table.
	@export BENTHAM_CLUSTER_DIR=$(BENCH_CLUSTER_DIR); \
	$(CLUSTER) reset 2>/dev/null; $(CLUSTER) up >/dev/null && trap '$(CLUSTER) down' EXIT && \
	$(BIN)/python -m bench.run --kubeconfig $(BENCH_CLUSTER_DIR)/kubeconfig --out bench/results/latest.json $(BENCH_ARGS)

.PHONY: bench-pass
bench-pass: install ## One worker pass at 100,000 cells (and 3,000), one Job changed: JSON per size, no cluster.
	$(BIN)/python -m bench.pass_time $(BENCH_ARGS)
	$(BIN)/python -m bench.pass_time --queries 150 --surfaces 4 --locations 5 --parallelism 100 $(BENCH_ARGS)

.PHONY: profile
profile: install ## Profile the operator with py-spy during the 3,000-cell scenario; writes bench/results/profile/.
	@export BENTHAM_CLUSTER_DIR=$(BENCH_CLUSTER_DIR); \
	$(CLUSTER) reset 2>/dev/null; $(CLUSTER) up >/dev/null && trap '$(CLUSTER) down' EXIT && \
	$(BIN)/python -m bench.run --kubeconfig $(BENCH_CLUSTER_DIR)/kubeconfig --only 3k \
		--profile bench/results/profile --out bench/results/profile/run.json $(BENCH_ARGS)
