# make demo: set up, then run the main job on the embedded default.
# make test: set up (virtualenv, packages, PostgreSQL and Redis), then every check and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup services browser demo test lint unit clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	./scripts/services.sh

browser:
	./scripts/browser.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup services browser lint
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

demo: setup
	$(BIN)/python -m gpulease.demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info gpulease.db
