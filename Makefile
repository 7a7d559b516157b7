# One Makefile, used the same locally and in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## run: jobfleet on its embedded default (SQLite under ./.jobfleet), dashboard/API on :8360
run: $(STAMP)
	$(BIN)/jobfleet up --data-dir .jobfleet

## test: lint, type-check and the whole test suite (SQLite and PostgreSQL)
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## bench: every benchmark (figures printed; copy them into bench/RESULTS.md)
bench: $(STAMP)
	$(BIN)/python -m bench.submit
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.drain
	$(BIN)/python -m bench.failover --database all
	$(BIN)/python -m bench.lease_expiry --database all

clean:
	rm -rf $(VENV) .jobfleet .pytest_cache .mypy_cache .ruff_cache
