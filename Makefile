# dexec: developer commands. GNU make; needs only Python 3.11+ and pip, everything else comes
# from uv and the lock file.
#
#   make up                      create the environment and run the engine (Ctrl-C stops it)
#   make up ARGS="--fresh"       ... passing options to dexec-dev (see `uv run dexec-dev --help`)
#   make test                    run the test suite
#   make test PYTEST_ARGS="-q tests/e2e"

.DEFAULT_GOAL := help

PYTHON ?= python3
# uv on PATH if there is one; otherwise the one `ensure-uv` installs with pip, run as
# `python3 -m uv` (works even when pip's script directory, e.g. ~/.local/bin, is not on PATH).
UV ?= $(if $(shell command -v uv 2>/dev/null),uv,$(PYTHON) -m uv)
ARGS ?=
PYTEST_ARGS ?= -q
DATA_DIR ?= .dexec

.PHONY: help up test bench bench-compare bench-floor lint fmt clean sync ensure-uv system-packages

help: ## list the targets
	@echo "dexec make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo 'Variables: ARGS="..." (make up), PYTEST_ARGS="..." (make test, default: -q)'

ensure-uv: ## install uv with pip if it is missing
	@$(UV) --version >/dev/null 2>&1 || { \
		echo "uv not found; installing it with pip"; \
		$(PYTHON) -m pip install --user uv || $(PYTHON) -m pip install uv; \
	}
	@$(UV) --version >/dev/null 2>&1 || { \
		echo "could not install uv with pip (pip install uv)" >&2; \
		exit 1; \
	}

sync: ensure-uv ## create/update .venv exactly from uv.lock
	$(UV) sync --frozen

# `exec`: uv replaces the recipe's shell, and Ctrl-C/SIGTERM reach dexec-dev, which stops the
# services, Postgres and NATS and exits 0.
up: sync ## create the environment and start the engine (NATS, Postgres, the four services)
	exec $(UV) run --frozen dexec-dev $(ARGS)

system-packages: ## install the Debian packages the tests need (chromium, prometheus), if missing
	bash tools/system-packages.sh

test: sync system-packages ## run the tests (PYTEST_ARGS, default -q)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: sync ## the standard benchmark: zero and realistic latency on fresh local stacks
	$(UV) run --frozen python -m dexec_tools.bench $(BENCH_ARGS)

REVS ?= HEAD~1 HEAD
COMPARE_ARGS ?=
bench-compare: sync ## before/after in one run: REVS (first = baseline), alternating rounds, medians
	$(UV) run --frozen python -m dexec_tools.bench_compare $(REVS) $(COMPARE_ARGS)

FLOOR_ARGS ?=
bench-floor: sync ## the bus floor: the engine's NATS traffic alone, CPU per order (no app work)
	$(UV) run --frozen python -m dexec_tools.bus_floor $(FLOOR_ARGS)

lint: ensure-uv ## ruff lint and format check
	$(UV) run --frozen ruff check . && $(UV) run --frozen ruff format --check .

fmt: ensure-uv ## fix what ruff can fix, then format
	$(UV) run --frozen ruff check --fix . && $(UV) run --frozen ruff format .

# dexec-dev holds an flock on DATA_DIR/.lock while it runs: do not delete a live database.
clean: ## remove the local data dir (.dexec) and caches; keeps .venv
	@if [ -e $(DATA_DIR)/.lock ] && ! $(PYTHON) -c 'import fcntl, sys; \
		fcntl.flock(open(sys.argv[1], "ab"), fcntl.LOCK_EX | fcntl.LOCK_NB)' $(DATA_DIR)/.lock \
		2>/dev/null; then \
		echo "dexec-dev is running on $(DATA_DIR); stop it first" >&2; exit 1; \
	fi
	rm -rf $(DATA_DIR) .pytest_cache .ruff_cache .hypothesis test-artifacts
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
