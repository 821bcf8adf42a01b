# Abohub: `make run` starts the embedded demo, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint services chromium screenshots bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/abohub db upgrade
	$(BIN)/abohub demo load --base-url http://$(HOST):$(PORT)
	$(BIN)/abohub serve --host $(HOST) --port $(PORT) --simulators

services:
	.ci/services

chromium:
	.ci/chromium

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(VENV)/.test-installed services chromium lint
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# The browser tests, saving the admin's screenshots into docs/screenshots (SQLite run).
screenshots: $(VENV)/.test-installed services chromium
	ABOHUB_SCREENSHOTS=docs/screenshots $(BIN)/pytest -n 0 --db sqlite tests/browser

bench: $(VENV)/.test-installed services
	$(BIN)/python -m bench.billing_run
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.sync_throughput
	$(BIN)/python -m bench.webhook_ingest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
