# The README's two commands: `make run` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: run test test-fast install services browser promtool pgvector kubectl migrate lint pytest clean-services

## run: install, start services, migrate, create the demo tenant, run web + worker + scheduler
run: install services migrate
	@$(PY) manage.py demo
	@echo "Starting web (http://localhost:$(PORT)/), worker, scheduler and the WeCom sandbox; Ctrl-C stops them all."
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HOST=$(HOST) $(VENV)/bin/honcho -f platform/Procfile.dev -d . start -p $(PORT)

## test: the same set-up, then lint and the full test suite against real PostgreSQL and Redis
test: install services lint pytest

## test-fast: lint and the tests that start no processes (no web server, worker, scheduler or browser)
test-fast: install services promtool pgvector kubectl lint
	$(PY) -m pytest -m "not live"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

services: install
	@$(PY) scripts/services.py ensure

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

pytest: install services browser promtool pgvector kubectl
	$(PY) -m pytest

clean-services:
	@$(PY) scripts/services.py stop

## chaos: the chaos suite (bench/chaos.py, docs/CHAOS.md): its own Redis with Sentinels, PostgreSQL primary and
## standby, RabbitMQ, the app and the sandbox; faults one at a time under a flow of callbacks, every one must end
## with 0 lost and 0 duplicate messages (about 10-15 minutes). Options: make chaos CHAOS_ARGS="--faults web-kill"
.PHONY: chaos
chaos: install
	$(PY) bench/chaos.py $(CHAOS_ARGS)
