# Integration Hub - two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := .tools/node_modules/.bin/azurite-blob
CHECKOV := .tools/checkov/.version
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench dev clean redis

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON) and installing dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

$(AZURITE): scripts/install_azurite.sh
	@echo "==> installing Azurite (npm) into .tools"
	bash scripts/install_azurite.sh

$(CHECKOV): scripts/install_checkov.sh
	bash scripts/install_checkov.sh

redis:  # Debian's redis-server for the rate-limit tests (the suite starts it on a free port itself)
	@command -v redis-server >/dev/null 2>&1 || [ -x "$${REDIS_SERVER_BIN:-}" ] || bash scripts/install_redis.sh \
	  || echo "==> redis-server could not be installed: the Redis rate-limit tests will be skipped, saying why"

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ihub demo $(ARGS)

dev: $(STAMP)
	$(BIN)/ihub dev $(ARGS)

test: $(STAMP) $(AZURITE) $(CHECKOV) redis
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .tools .local .pytest_cache .mypy_cache .ruff_cache
