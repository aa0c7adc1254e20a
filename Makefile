# The two set-up commands of the README:
#   make run    start the whole shop on its offline default (SQLite, Venice sandbox, sandbox payments)
#   make test   install what the tests need and run the whole suite (the same command CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install lint typecheck pytest services browser node proxy clean

$(BIN)/cheaptokens: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/cheaptokens

run: install
	$(BIN)/cheaptokens serve

services:
	bash scripts/services.sh

browser:
	bash scripts/browser.sh

# Debian's nginx, the reverse proxy of the production-layout test (tests/deploy, deploy/up.sh).
proxy:
	bash scripts/proxy.sh

# The openai npm package, to run the docs' Node samples (skipped where there is no npm).
node:
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund --silent; \
	else echo "npm not found: the Node docs samples will be skipped"; fi

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install services browser node proxy
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules
