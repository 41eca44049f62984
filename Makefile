# The README's two commands: `make run` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
# The websocket process (uvicorn) of `make run`: the pages served on PORT open their socket on this port
WS_PORT ?= $(shell echo $$(($(PORT) + 1)))

.PHONY: run test test-fast test-amqp install services rabbitmq browser promtool pgvector kubectl migrate lint pytest \
        clean-services

## run: install, start services, migrate, create the demo tenant, run web + websocket + worker + scheduler
run: install services migrate
	@$(PY) manage.py demo
	@echo "Starting web (http://localhost:$(PORT)/; its pages' sockets on :$(WS_PORT)), worker, scheduler and the WeCom sandbox; Ctrl-C stops them all."
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HOST=$(HOST) WS_PORT=$(WS_PORT) $(VENV)/bin/honcho -f platform/Procfile.dev -d . start -p $(PORT)

## test: the same set-up, then lint and the full test suite against real PostgreSQL and Redis
test: install services lint pytest

## test-fast: lint and the tests that start no processes (no web server, worker, scheduler or browser)
test-fast: install services promtool pgvector kubectl lint
	$(PY) -m pytest -m "not live"

## test-amqp: the pipeline's live tests with RabbitMQ as the Dramatiq broker (a vhost of the run's own)
TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
PIPELINE_LIVE_TESTS := conversations/tests/test_ingress_live.py conversations/tests/test_answering_live.py \
	conversations/tests/test_graceful_shutdown_live.py conversations/tests/test_rabbitmq_broker_live.py
test-amqp: install services rabbitmq
	BROKER_URL=$(TEST_AMQP_URL) $(PY) -m pytest $(PIPELINE_LIVE_TESTS)

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

services: install
	@$(PY) scripts/services.py ensure

# rabbitmq: the RabbitMQ of the tests that run the pipeline on it (TEST_AMQP_URL; started when missing)
rabbitmq: install
	@TEST_AMQP_URL=$(TEST_AMQP_URL) $(PY) scripts/services.py rabbitmq

migrate: services
	$(PY) manage.py migrate_schemas --noinput

# lint: ruff, and the layers of docs/ARCHITECTURE.md (import-linter contracts in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# browser: Debian's Chromium for the browser tests (installed when missing; not needed by `make run`)
browser:
	@bash scripts/ensure_browser.sh

# promtool: Prometheus's checker for the tests of platform/observability/ (installed when missing)
promtool:
	@VENV=$(VENV) bash scripts/ensure_promtool.sh

# pgvector: the PostgreSQL extension of kb/vectors.py's HNSW backend (installed or built when missing; `make run`
# works without it: vector search is then exact in-process)
pgvector:
	@bash scripts/ensure_pgvector.sh

# kubectl: renders the Kubernetes overlays for the deployment tests (offline; installed when missing)
kubectl:
	@bash scripts/ensure_kubectl.sh

# pytest: the live tests and the others side by side, each with its own database and Redis db (scripts/run_tests.py)
pytest: install services rabbitmq browser promtool pgvector kubectl
	$(PY) scripts/run_tests.py

clean-services:
	@$(PY) scripts/services.py stop

## chaos: the chaos suite (bench/chaos.py, docs/CHAOS.md): its own Redis with Sentinels, PostgreSQL primary and
## standby, RabbitMQ, the app and the sandbox; faults one at a time under a flow of callbacks, every one must end
## with 0 lost and 0 duplicate messages (about 10-15 minutes). Options: make chaos CHAOS_ARGS="--faults web-kill"
.PHONY: chaos
chaos: install
	$(PY) bench/chaos.py $(CHAOS_ARGS)
