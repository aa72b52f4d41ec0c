# greenlight developer entry points. `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit e2e lint control-plane controllers prometheus simulate bench clean manifests image

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: bring greenlight up on its embedded defaults (local control plane, webhook, reconciler, demo Jobs)
run: $(STAMP) controllers
	GREENLIGHT_CONTROLLERS_DIR=$$(GREENLIGHT_CONTROLLERS="$(E2E_CONTROLLERS)" hack/build-controllers.sh 2>/dev/null) \
	$(BIN)/greenlight demo

## control-plane: build (or find cached) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok, helm
control-plane:
	hack/build-control-plane.sh

## controllers: build (or find cached) the workload controllers the e2e suite runs: jobset and kueue
# (tests/e2e/test_kueue.py, the JobSet tests). training-operator and kuberay are not used by any
# test yet, so they are not built here (their CRDs are extracted all the same); build them with
# `hack/build-controllers.sh` alone. Building needs Go and the Go module proxy; a cached build
# needs neither.
E2E_CONTROLLERS := jobset kueue
controllers:
	GREENLIGHT_CONTROLLERS="$(E2E_CONTROLLERS)" hack/build-controllers.sh

## prometheus: install Debian's prometheus package (prometheus, promtool) when missing; the e2e suite runs it
prometheus:
	hack/install-prometheus.sh

## test: lint, type-check, unit and end-to-end tests (builds the control plane and the e2e controllers, installs Prometheus on first use)
test: $(STAMP) control-plane controllers prometheus lint
	GREENLIGHT_K8S_BIN=$$(hack/build-control-plane.sh 2>/dev/null) \
	GREENLIGHT_CONTROLLERS_DIR=$$(GREENLIGHT_CONTROLLERS="$(E2E_CONTROLLERS)" hack/build-controllers.sh 2>/dev/null) \
	GREENLIGHT_PROMETHEUS_BIN=$$(hack/install-prometheus.sh 2>/dev/null) $(BIN)/pytest -q

## unit: the fast tests only
unit: $(STAMP)
	$(BIN)/pytest -q -m 'not e2e'

## manifests: regenerate the chart's settings-derived parts (values, schema, README table) and render manifests/ from the chart
manifests: $(STAMP)
	$(BIN)/python hack/update-chart-config.py
	hack/render-manifests.sh

## image: build the container image with podman (hack/build-image.sh), then check it: serve --help, /healthz over TLS on a read-only root, size, Python packages
image:
	hack/build-image.sh --smoke

lint: $(STAMP)
	$(BIN)/ruff check webhook tests bench
	$(BIN)/ruff format --check webhook tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
