# regbench: `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV_STAMP := .venv/.installed-stamp
RUN := $(UV) run --frozen --no-sync
# Parallel test workers; conftest gives each one torch thread.
TEST_WORKERS ?= 2

.PHONY: install run test test-scaleout test-slow lint format ui dashboard site bench reproduce clean help

help:
	@echo "make run | test | ui | dashboard | site | bench | reproduce | lint | format | install | clean"

$(VENV_STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: $(VENV_STAMP)

run: install  ## the main job: default MNIST-1D MLP run, tracked in mlruns/
	$(RUN) regbench train $(ARGS)

test: install
	$(RUN) pytest -n $(TEST_WORKERS) -q -p no:cacheprovider

test-scaleout: install  ## PostgreSQL + MLflow tracking server with several sweep commands
	$(RUN) pytest -n 0 -q -m scaleout -p no:cacheprovider tests/test_scaleout.py

test-slow: install
	$(RUN) pytest -n $(TEST_WORKERS) -q -m slow -p no:cacheprovider

lint: install
	$(RUN) ruff check src tests
	$(RUN) ruff format --check src tests
	$(RUN) lint-imports  # the layer contract in pyproject.toml [tool.importlinter]

format: install
	$(RUN) ruff format src tests
	$(RUN) ruff check --fix src tests

ui: install  ## MLflow UI on the project store, bound to localhost
	@# MLflow 3.17's UI picks GenAI or model-training views from this URL parameter (else
	@# from the browser's last choice, GenAI at first), not from the experiment's kind tag
	@echo "open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(RUN) mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlruns/mlflow.db" \
		--default-artifact-root "$(CURDIR)/mlruns/artifacts" --host 127.0.0.1 --port 5000

# The sweeps' Optuna storage (regbench sweep's default); STUDIES=postgresql://... for a shared one.
STUDIES ?= sqlite:///$(CURDIR)/mlruns/optuna.db

dashboard: install  ## optuna-dashboard on the project's study storage, bound to localhost
	@# optuna-dashboard does not create tables: a fresh checkout gets an empty storage first
	$(RUN) python -c "import sys, optuna; optuna.storages.RDBStorage(sys.argv[1])" "$(STUDIES)"
	$(RUN) optuna-dashboard "$(STUDIES)" --host 127.0.0.1 --port 8080

# The results site (regbench site): SITE=... to write elsewhere, SITE_PORT=... to serve elsewhere.
SITE ?= $(CURDIR)/reports/site
SITE_PORT ?= 8000

site: install  ## build the results site from the MLflow store and serve it on localhost
	$(RUN) regbench site --out "$(SITE)"
	@echo "serving $(SITE): open http://127.0.0.1:$(SITE_PORT)/ (Ctrl-C stops; the files also open without a server)"
	$(RUN) python -m http.server $(SITE_PORT) --bind 127.0.0.1 --directory "$(SITE)"

bench: install
	$(RUN) regbench bench

reproduce: install  ## every registered reproduction at cpu scale (ARGS="--scale tiny" etc.)
	$(RUN) regbench reproduce --all $(ARGS)

clean:
	rm -rf .venv .pytest_cache .ruff_cache
