# Two commands matter: `make demo` and `make test`. Each makes its own virtualenv (.venv) with
# the Python found as $(PYTHON) (3.11 or newer) and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test test-quick lint typecheck check bench serve clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway demo

serve: $(STAMP)
	$(BIN)/gateway serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow' -x $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests migrations
	$(BIN)/ruff format --check gateway tests migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy gateway

check: test lint typecheck

# Needs wrk (apt-get install -y wrk); BENCH_ARGS="--seconds 10" for longer windows.
bench: $(STAMP)
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
