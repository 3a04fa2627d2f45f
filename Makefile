# The single entry point: setup, run, test, lint.  `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VIGIE  := $(BIN)/vigie
# Services `make models` trains: default, every prediction service of the registry
# (services/vigie_services/pieces.py), read once the venv exists.
SERVICES ?=

.DEFAULT_GOAL := help
.PHONY: help setup system-deps keys models run test test-fast bench bench-alerting lint fmt openapi clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/vigie: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

system-deps:  ## install redis-server and nginx if missing (as root with apt), or say what to install
	@scripts/ensure-system-deps

setup: system-deps $(BIN)/vigie keys  ## create .venv, install Vigie and its tools, make dev keys

keys: $(BIN)/vigie  ## generate the dev RSA key pair and JWKS under var/keys (kept if present)
	@$(VIGIE) keys init

models: $(BIN)/vigie  ## train every model that is missing (needs the data directory)
	@for s in $(or $(SERVICES),$$($(VIGIE) pieces --kind prediction)); do $(VIGIE) models has $$s || $(VIGIE) train $$s || exit 1; done

run: setup  ## set up, train missing models, run the whole fleet behind the gateway (Ctrl-C stops all)
	$(VIGIE) fleet run

test: setup  ## run the whole test suite (starts its own redis-server and services on free ports)
	@# PostgreSQL cases need a server: scripts/test-postgres starts one (as root) and prints its URL.
	@url="$${VIGIE_TEST_POSTGRES_URL:-}"; \
	if [ -z "$$url" ]; then url="$$(scripts/test-postgres)" || exit 1; fi; \
	echo "VIGIE_TEST_POSTGRES_URL=$${url:+$${url%%:*}://...} $(BIN)/python -m pytest"; \
	VIGIE_TEST_POSTGRES_URL="$$url" $(BIN)/python -m pytest

test-fast: $(BIN)/vigie  ## unit tests only
	$(BIN)/python -m pytest -m 'not integration and not realdata'

bench: setup models  ## fleet throughput and latency through the gateway vs a plain FastAPI baseline (wrk)
	@scripts/ensure-system-deps wrk
	$(BIN)/python -m bench.fleet $(BENCH_ARGS)

bench-alerting: $(BIN)/vigie  ## latency from a level event to its webhook (1000 events, 100/s)
	$(BIN)/python -m bench.alerting_latency --events 1000 --rate 100

lint: $(BIN)/vigie  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

openapi: $(BIN)/vigie  ## rewrite the committed OpenAPI snapshots (tests/contract/openapi) after a deliberate change
	$(BIN)/python -m tests.contract.snapshots

fmt: $(BIN)/vigie  ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove runtime state (keeps models and keys)
	rm -rf var/prometheus var/spool var/*.db var/redis .pytest_cache
