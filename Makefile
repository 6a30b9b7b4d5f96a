# regogate: `make demo` runs the main job, `make test` passes the tests.
# Both install what they need from scratch (venv, OPA, test servers) and reuse caches.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVERS_VENV := .venv-servers
CACHE ?= $(or $(REGOGATE_CACHE),$(HOME)/.cache/regogate)
OPA_VERSION := v1.22.2
export REGOGATE_CACHE := $(CACHE)
export REGOGATE_OPA := $(CACHE)/bin/opa-$(OPA_VERSION)
OPA := $(REGOGATE_OPA)
REGAL := $(CACHE)/bin/regal
PIP_CACHE := $(CACHE)/pip
export PIP_CACHE_DIR := $(PIP_CACHE)
export npm_config_cache := $(CACHE)/npm

.PHONY: help setup redis-server bundle-server docker-engine demo test lint typecheck rego-check pytest wheel-check bench clean

help:
	@echo "make demo   - convert policies/python.yaml and show what a real OPA decides"
	@echo "make test   - install everything, then lint, type-check, Rego gates and pytest"

# --- installation -----------------------------------------------------------
$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,serve]'
	@touch $@

# mypy cannot follow setuptools' editable import hook, so it reads the
# source folders through a symlinked `regogate` namespace instead.
build/dev/regogate/testing:
	mkdir -p build/dev/regogate
	ln -sfn ../../../core build/dev/regogate/core
	ln -sfn ../../../proxy build/dev/regogate/proxy
	ln -sfn ../../../converters build/dev/regogate/converters
	ln -sfn ../../../testing build/dev/regogate/testing

$(OPA): scripts/setup-opa.sh
	OPA_VERSION=$(OPA_VERSION) scripts/setup-opa.sh >/dev/null
	@touch $@

tests/servers/node_modules/.installed: tests/servers/package.json
	cd tests/servers && npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(SERVERS_VENV)/.installed: tests/servers/requirements.txt
	$(PY) -m venv $(SERVERS_VENV)
	$(SERVERS_VENV)/bin/pip install -q -r tests/servers/requirements.txt
	@touch $@

redis-server:
	@scripts/setup-redis.sh

bundle-server:
	@scripts/setup-bundle-server.sh

docker-engine:
	@scripts/setup-docker.sh

setup: $(VENV)/.installed build/dev/regogate/testing $(OPA) tests/servers/node_modules/.installed $(SERVERS_VENV)/.installed redis-server bundle-server docker-engine

# --- the main job -----------------------------------------------------------
demo: setup
	$(BIN)/python scripts/demo.py

# --- checks -----------------------------------------------------------------
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy -p regogate.core -p regogate.proxy -p regogate.converters -p regogate.testing
	$(BIN)/mypy tests scripts bench

rego-check: setup
	$(OPA) fmt --list --fail rego/
	$(OPA) check --strict rego/
	$(OPA) test rego/ --coverage --threshold 90 --format json > build/rego-coverage.json || \
	  { $(OPA) test rego/ -v; exit 1; }
	@$(BIN)/python -c "import json; print('rego coverage: %.1f%%' % json.load(open('build/rego-coverage.json'))['coverage'])"
	@if [ -x $(REGAL) ]; then $(REGAL) lint rego/; else echo "regal: not available from the Go module proxy (see $(CACHE)/regal.unavailable); skipped"; fi

# A private Docker engine (or the one already here) for the container test paths, stopped afterwards.
pytest: setup
	PY=$(BIN)/python scripts/with-docker.sh $(BIN)/pytest -q

# Proves the distribution works outside the source tree.
wheel-check: setup
	rm -rf build/wheel build/wheel-venv
	$(BIN)/python -m build --wheel --outdir build/wheel . >/dev/null
	$(PY) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install -q build/wheel/*.whl
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/regogate validate -c $(CURDIR)/policies/python.yaml
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/regogate convert -c $(CURDIR)/policies/python.yaml -o $(CURDIR)/build/wheel/python.tar.gz
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/regogate core-bundle -o $(CURDIR)/build/wheel/gate
	$(OPA) test -b build/wheel/python.tar.gz -b build/wheel/gate >/dev/null
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/regogate --version
	cd /tmp && $(CURDIR)/$(BIN)/python $(CURDIR)/scripts/wheel_session.py $(CURDIR)/build/wheel-venv/bin/regogate $(CURDIR)/$(SERVERS_VENV)/bin/mcp-server-time
	@echo "wheel-check: the installed wheel validates, converts, writes the gate and gates a real session"

test: lint typecheck rego-check pytest wheel-check

# The full benchmark run (not part of CI); `make test` runs a smoke version of it.
bench: setup
	$(BIN)/python -m bench.run --output docs/benchmarks.md

clean:
	rm -rf build $(VENV) $(SERVERS_VENV) tests/servers/node_modules .pytest_cache .mypy_cache .ruff_cache
