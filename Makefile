# The two commands a newcomer needs (see README.md):
#   make demo   a local fleet (hub + 3 members + Postgres) with the controller running
#   make test   lint, type-check, layer contracts, and every test against real parts
#
# Each installs what it needs: a virtualenv in .venv with the Python dependencies, and the
# control-plane binary built from the Kubernetes Go modules (cached under ~/.cache/federation).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv controlplane browser debootstrap image helm lint fmt typecheck test test-unit test-integration test-e2e demo clean bench-store

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

controlplane: venv
	$(BIN)/federation dev build

# Debian's chromium, for the status page's test in a real headless browser. Installed when
# missing and running as root (as CI does); otherwise the test fails saying how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "chromium is missing and this is not root: run 'sudo apt-get install chromium'"; \
	  fi; }

# debootstrap, for the controller image built without Docker (deploy/image/build.py; it needs
# root for debootstrap and chroot). Installed when missing and running as root (as CI does);
# otherwise the image's test fails saying how to install it.
debootstrap:
	@command -v debootstrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; \
	  else \
	    echo "debootstrap is missing and this is not root: run 'sudo apt-get install debootstrap'"; \
	  fi; }

# The controller's OCI image layout in $(IMAGE_DIR), without a container engine (deploy/README.md
# says how to push it). The Debian base is cached under ~/.cache/federation/image: a rebuild
# redoes only the package layer.
IMAGE_DIR ?= build/image
image: debootstrap
	$(PYTHON) deploy/image/build.py --output $(IMAGE_DIR)

# The Helm CLI, for the tests that render deploy/helm/federation (they fail naming this target
# without it): built from its Go module like the control plane, cached per version under
# ~/.cache/federation/helm.
HELM_VERSION ?= v3.22.0
HELM_BIN     := $(HOME)/.cache/federation/helm/$(HELM_VERSION)/helm
helm: $(HELM_BIN)

$(HELM_BIN):
	GOBIN=$(dir $(HELM_BIN)) GOFLAGS=-buildvcs=false $(or $(FEDERATION_GO),go) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

lint: venv
	$(BIN)/ruff check federation tests bench deploy/image
	$(BIN)/ruff format --check federation tests bench deploy/image
	$(BIN)/lint-imports

# The package, then the alembic scripts in it: they are package data, not modules of an importable
# package (versions/0001_... is no module name), so `packages` does not reach them; same config.
typecheck: venv
	$(BIN)/mypy
	$(BIN)/mypy federation/migrations
	$(BIN)/mypy --strict deploy/image/build.py

fmt: venv
	$(BIN)/ruff format federation tests bench deploy/image
	$(BIN)/ruff check --fix federation tests bench deploy/image

test-unit: venv helm
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: venv controlplane browser helm
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: venv controlplane debootstrap
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

# One pytest session: one fleet shared by integration and e2e tests.
# Two workers (pytest-xdist), each with a fleet of its own; a module's tests stay on one worker
# (--dist loadscope), so a module's controller is started once. Most integration tests wait on
# controllers and clusters rather than compute, so two at a time fit the machine's two cores.
# PYTEST_WORKERS=0 runs everything in this one process.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadscope)

test: lint typecheck controlplane browser helm debootstrap
	$(BIN)/pytest tests $(XDIST) $(PYTEST_ARGS)

demo: venv controlplane
	$(BIN)/federation demo

# Bulk upserts of the state store beside COPY of the same rows (a fresh embedded Postgres).
bench-store: venv
	$(BIN)/python -m bench.store

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
