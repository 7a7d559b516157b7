# One Makefile, used the same locally and in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint typecheck unit bench bench-peers bench-ui screenshots chromium clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## run: jobfleet on its embedded default (SQLite under ./.jobfleet), dashboard/API on :8360
run: $(STAMP)
	$(BIN)/jobfleet up --data-dir .jobfleet

## test: lint, type-check and the whole test suite (SQLite and PostgreSQL; tests/ui in Chromium),
## in TEST_WORKERS processes (each has its own PostgreSQL database; TEST_WORKERS=0: one process)
TEST_WORKERS ?= 3
test: $(STAMP) lint typecheck chromium
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

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

## chromium: Debian's headless browser for tests/ui and the screenshots (never Playwright's download)
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the dashboard tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "$(CHROMIUM) is missing: run 'sudo apt-get install -y chromium' (tests/ui skip without it; with CI=true they fail)"; \
	fi

## bench-peers: jobfleet's submit, latency and drain beside the peers (../shared/bench/peers),
## one run, one PostgreSQL server, one table with ratios (PEERS="..." REPS=1 RUNS=1; see bench/peers.sh)
bench-peers: $(STAMP)
	bash bench/peers.sh

## bench-ui: dashboard server time on 1,000,000 jobs in PostgreSQL
bench-ui: $(STAMP)
	$(BIN)/python -m bench.ui

## screenshots: regenerate docs/img/*.png from a throw-away jobfleet up
screenshots: $(STAMP) chromium
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .jobfleet .pytest_cache .mypy_cache .ruff_cache
