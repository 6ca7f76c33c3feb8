# miStudio: `make run` starts the studio, `make test` runs the whole suite, `make test-fast` all but
# the tests marked slow.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint install install-dev migrate serve-hub bench bench-install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py run_studio --host $(HOST) --port $(PORT)

# The suite on TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0: in this one). Each has its
# own data dir, test database and Redis database (tests/settings.py, tests/services/conftest.py),
# and every server a test starts takes a free port.
TEST_WORKERS ?= 2

test: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Everything but the tests marked `slow` (browsers, real servers and workers, PostgreSQL, Redis,
# Schemathesis): a few minutes instead of a quarter of an hour.
test-fast: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# ruff (lint and format) and mypy with django-stubs, as configured in pyproject.toml.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mistudio_site models_app templates_app tests

# Tiny models of every supported family over the Hub protocol (point HF_ENDPOINT at it).
serve-hub: install
	$(BIN)/python -m tests.serve_hub --port 8900

# Benchmarks (not tests): bench/README.md. One script: `make bench BENCH_SCRIPTS=bench/load.py`;
# a script's own options: run it with $(BIN)/python after `make bench-install`.
BENCH_SCRIPTS ?= bench/peers.py bench/extraction.py bench/download.py bench/pages.py bench/load.py bench/gpu_loading.py bench/first_progress.py bench/saelens_train.py bench/checkpoints.py bench/batch_costs.py

$(VENV)/.installed-bench: bench/requirements.txt $(VENV)/.installed
	$(BIN)/pip install -r bench/requirements.txt
	touch $@

bench-install: $(VENV)/.installed-bench

bench: bench-install
	@set -e; for script in $(BENCH_SCRIPTS); do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf $(VENV)
