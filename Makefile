VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install test lint typecheck pytest bench run clean

install: $(VENV)/.installed
	@command -v redis-server >/dev/null 2>&1 || $(MAKE) --no-print-directory redis-server

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

.PHONY: redis-server
redis-server:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	elif command -v brew >/dev/null 2>&1; then \
		brew install redis; \
	else \
		echo "redis-server not found and no apt-get or brew here: install Redis yourself or use 'docker compose up redis'"; \
		exit 1; \
	fi

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy worker adapters tests

pytest:
	$(BIN)/pytest

test: install lint typecheck pytest

bench: install
	$(PY) -m tests.bench

run: install
	$(BIN)/callmatch decide $(wildcard config/examples/*[!d].json)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
