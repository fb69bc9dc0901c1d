# Driftline — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV312 := .venv312
# Lambda runs Python 3.12: `make test-py312` tests there (pyenv's or any python3.12 on PATH).
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.8
ENV ?= dev
CDK := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 node_modules/.bin/cdk
PYTEST_ARGS ?=
BENCH_ARGS ?= --quick
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export OMP_NUM_THREADS ?= 1

.PHONY: help venv install install-dev node demo test test-fast test-py312 test-botocore-latest lint typecheck synth deploy destroy bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

venv: $(UV)

install: $(UV) ## Install runtime + local-platform dependencies from uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --extra local

install-dev: $(UV) ## Install everything (dev, cdk) from uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --all-extras

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: node_modules/.bin/cdk

demo: install ## Run the whole story locally: ingest → train → serve → drift → retrain → canary → promote
	$(BIN)/driftline demo

test: install-dev ## Lint, type-check and run the whole test suite
	$(BIN)/ruff check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/ruff format --check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install-dev ## The inner loop: lint, types, unit + integration tests without the slow modules (tests/conftest.py)
	$(BIN)/ruff check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/ruff format --check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q -m "not slow" tests/unit tests/integration $(PYTEST_ARGS)

test-py312: $(UV) ## Unit + integration tests on Python 3.12 with the versions Lambda's layers get from uv.lock
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: make test-py312 PYTHON312=/path/to/python3.12"; exit 1; }
	UV_PROJECT_ENVIRONMENT=$(VENV312) $(UV) sync --frozen --inexact --all-extras --python $(PYTHON312)
	$(VENV312)/bin/python -c 'import sys, numpy, pyarrow, onnxruntime; print("Python", sys.version.split()[0], "numpy", numpy.__version__, "pyarrow", pyarrow.__version__, "onnxruntime", onnxruntime.__version__)'
	$(VENV312)/bin/pytest -n 2 -q -m "not e2e and not localstack" tests/unit tests/integration $(PYTEST_ARGS)

test-botocore-latest: install-dev ## The botocore loader hooks against the newest botocore on PyPI (Lambda's runtime has its own)
	rm -rf .driftline/botocore-latest
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) pip install --quiet --target .driftline/botocore-latest --upgrade botocore
	PYTHONPATH=.driftline/botocore-latest $(BIN)/python -c 'import botocore; print("botocore", botocore.__version__, botocore.__file__)'
	PYTHONPATH=.driftline/botocore-latest $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_aws_loader.py

lint: install-dev ## ruff + mypy + bandit
	$(BIN)/ruff check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/ruff format --check driftline stacks lambdas tests benchmarks examples localstack app.py
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r driftline lambdas stacks

synth: install-dev node ## Synthesize every stack into cdk.out (offline, no Docker, no credentials)
	$(CDK) synth -c driftline:env=$(ENV) --quiet

deploy: install-dev node ## Deploy all stacks: make deploy ENV=prod (needs AWS credentials, Docker for the training image)
	$(CDK) deploy --all -c driftline:env=$(ENV) --require-approval broadening

destroy: install-dev node ## Remove all stacks of ENV (data is kept where removal=retain)
	$(CDK) destroy --all -c driftline:env=$(ENV)

bench: install-dev ## Run every benchmark at quick sizes (make bench BENCH_ARGS= for the full sizes)
	@mkdir -p .bench
	@set -e; for b in benchmarks/[a-z]*.py; do n=$$(basename $$b .py); echo "== $$n"; \
	  $(BIN)/python $$b $(BENCH_ARGS) --json .bench/$$n.json; done

clean: ## Remove build outputs (keeps .venv)
	rm -rf cdk.out .cache .bench .pytest_cache .mypy_cache .ruff_cache
