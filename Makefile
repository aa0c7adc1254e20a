# The two set-up commands of the README:
#   make run    start the whole shop on its offline default (SQLite, Venice sandbox, sandbox payments)
#   make test   install what the tests need and run the whole suite (the same command CI runs)
# and, while working on the code, `make check`: lint, types and the unit tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pytest-xdist workers of `make test`; most tests wait on servers and subprocesses, so more
# workers than this 2-core machine's cores pay (docs/architecture.md, "The test loop").
WORKERS ?= 4

.PHONY: run test check install lint typecheck pytest system services node clean lock

# constraints.txt pins every package to the versions the suite last passed with (`make lock`).
$(BIN)/cheaptokens: pyproject.toml constraints.txt
	PYTHON=$(PYTHON) bash scripts/apt.sh ensurepip=python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

install: $(BIN)/cheaptokens

run: install
	$(BIN)/cheaptokens serve

# Debian's PostgreSQL, Redis, Chromium, Node and npm, nginx and curl, each only if missing.
system:
	bash scripts/apt.sh

services: system
	bash scripts/services.sh

# The npm packages of the docs' Node samples (openai, standardwebhooks).
node: system
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund --silent; \
	else echo "npm not found: the Node docs samples will fail" >&2; fi

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy

# The whole suite in parallel, with coverage (shop subprocesses included) and its floor.
pytest: install services node
	rm -f .coverage .coverage.*
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup --cov --cov-report=term:skip-covered \
	  --cov-report=html
	$(BIN)/python scripts/coverage_floor.py

test: lint typecheck pytest

# The inner loop: no services, no browser, no coverage.
check: lint typecheck
	$(BIN)/pytest tests/unit -n 2 -q

# Re-resolve constraints.txt: the newest releases pyproject.toml allows, in a throw-away venv.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[test]'
	{ head -n 3 constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules \
	  .coverage .coverage.*
