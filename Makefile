# Two commands set everything up on a fresh machine (see README.md):
#   make demo   the main job: server on the embedded default
#   make test   lint, type-check and the whole test suite (what CI runs)
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps base-images test lint typecheck pytest demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	scripts/install-system-deps

# Offline Debian base images for model containers (cached by tag; ~4 min the first time).
base-images: system-deps
	scripts/build-base-images

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install system-deps base-images
	$(BIN)/pytest $(PYTEST_ARGS)

test: install system-deps lint typecheck pytest

demo: install system-deps
	scripts/demo

clean:
	rm -rf $(VENV) .csawm .pytest_cache .mypy_cache .ruff_cache
