# callmatch: `make install && make run` on a fresh machine; `make test` is what CI runs.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
EXAMPLES := $(filter-out %.expected.json,$(wildcard config/examples/*.json))

.PHONY: install test lint typecheck pytest bench fuzz chaos run demo readiness-demo examples schemas redis-server chromium screenshots clean

install: $(VENV)/.installed
	@command -v redis-server >/dev/null 2>&1 || $(MAKE) --no-print-directory redis-server
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || $(MAKE) --no-print-directory chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

redis-server:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	elif command -v brew >/dev/null 2>&1; then \
		brew install redis; \
	else \
		echo "redis-server is missing and there is no apt-get or brew here: install Redis, or run 'docker compose up redis'"; \
		exit 1; \
	fi

# The browser tests' headless Chromium (tests/browser). Installed by apt as root, or with sudo when it needs
# no password; elsewhere the browser tests are skipped and say what to install.
chromium:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium and chromedriver are missing: the browser tests will be skipped (Debian: apt-get install chromium chromium-driver)"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m worker.config.schema_export --check

typecheck: install
	$(BIN)/mypy worker adapters tests

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python -m tests.bench

# Hostile webhook bodies against the receiver; e.g. make fuzz FUZZ_ARGS="--bodies 100000 --seed 7"
fuzz: install
	$(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

# The real stack under faults, SIGKILLed workers and a restarted Redis; e.g. make chaos CHAOS_ARGS="--calls 100 --seed 7"
chaos: install
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

run: install
	$(BIN)/python -m worker.dev.devstack

demo: install
	$(BIN)/python -m worker.dev.demo

# callmatch doctor / setup on the emulators' plainest Salesforce org and HubSpot portal
readiness-demo: install
	$(BIN)/python -m tests.readiness_demo

# docs/schemas/*.schema.json from the models that read the documents (CI fails when one is stale)
schemas: install
	$(BIN)/python -m worker.config.schema_export

examples: install
	$(BIN)/callmatch decide --format text $(EXAMPLES)

# docs/screenshots/*.png: the console's main pages, taken by the browser tests on a real stack
screenshots: install
	CALLMATCH_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/browser -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
