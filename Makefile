# Two commands set everything up on a fresh machine (see README.md):
#   make demo       the main job: server on the embedded default
#   make test       lint, type-check and the whole test suite (what CI runs)
#   make test-fast  lint and the tests that need no Docker engine, PostgreSQL, browser or other Python (< 3 min)
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVER_STAMP := $(VENV)/.installed-server

.PHONY: install install-server system-deps base-images test test-fast lint typecheck pytest demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# What `make demo` needs: the server extra only (no test tools), unless the dev install is current.
$(SERVER_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	if [ $(STAMP) -nt pyproject.toml ]; then :; else $(BIN)/pip install -q -e '.[server]'; fi
	touch $(SERVER_STAMP)

install-server: $(SERVER_STAMP)

system-deps:
	scripts/install-system-deps

# Offline Debian base images for model containers (cached by tag; ~4 min the first time):
# python (test models), numpy (the `csawm init` kit: numpy + Pillow), torch (reference models).
# `make demo` builds only torch (in the background, while it installs); the tests build the rest.
base-images: system-deps
	scripts/build-base-images python numpy torch

# ruff, then the package layers of docs/design.md#layers (import-linter contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# The whole suite in two runs: the tests that need no engine, browser or long end-to-end run on two
# xdist workers, then those serially (they share one Docker engine). With PYTEST_ARGS: one run of them.
SERIAL_MARKERS := (docker or browser or slow) and not k8s_live
pytest: install system-deps base-images
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/pytest -q -n $(FAST_WORKERS) -m "not ($(SERIAL_MARKERS))"
	$(BIN)/pytest -m "$(SERIAL_MARKERS)"
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

test: install system-deps lint typecheck pytest

# The inner loop: no Docker engine, PostgreSQL, browser, cluster or long end-to-end run. DOCKER_HOST
# points nowhere, so a test that needs an engine but lacks the `docker` marker fails here.
# Two pytest-xdist workers (this project's machines have 2 cores; FAST_WORKERS=0 runs in-process).
FAST_MARKERS := not docker and not postgres and not browser and not k8s_live and not slow and not client_pythons
FAST_WORKERS ?= 2
test-fast: install lint
	DOCKER_HOST=unix:///nonexistent/csawm-test-fast.sock $(BIN)/pytest -q -n $(FAST_WORKERS) -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

# The main job from nothing: scripts/demo installs the Debian packages it needs (the engine,
# debootstrap), starts the torch base image in the background, installs the server (`make
# install-server`) meanwhile, and starts the server before the image is done.
demo:
	PY=$(PY) scripts/demo

clean:
	rm -rf $(VENV) .csawm .pytest_cache .mypy_cache .ruff_cache
