# Abohub: `make run` starts the embedded demo, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint services bench clean

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

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(VENV)/.test-installed services lint
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: $(VENV)/.test-installed services
	$(BIN)/python -m bench.billing_run
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.sync_throughput
	$(BIN)/python -m bench.webhook_ingest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
