# Two commands: `make up` runs Concierge on this machine, `make test` runs every test.
# Each sets up what is missing first (scripts/setup.sh), so a second run starts in seconds.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE ?= examples/acme/

.PHONY: up test setup ui lint typecheck unit integration cluster cluster-bins e2e crds proto clean bench eval

up: ## Run every service on loopback with the Acme example; prints the URL
	@scripts/setup.sh python ui
	$(BIN)/concierge up -f $(EXAMPLE)

test: ## Set up what is missing, then lint, type-check and run every test layer
	@scripts/setup.sh python ui browser cluster
	$(MAKE) --no-print-directory lint typecheck
	cd frontend && npm test --silent
	$(BIN)/pytest

setup:
	@scripts/setup.sh python ui browser cluster

ui:
	@scripts/setup.sh ui

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	cd frontend && npm run --silent typecheck

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest tests/unit

integration:
	$(BIN)/pytest tests/integration

cluster: ## The cluster tests against a real etcd + kube-apiserver + kube-controller-manager
	@scripts/setup.sh python cluster
	$(BIN)/pytest tests/cluster

cluster-bins: ## Build the Kubernetes binaries from source (cached; slow only the first time)
	scripts/controlplane.sh

e2e:
	$(BIN)/pytest tests/e2e

PYDOCS := /usr/share/doc/python3.11/html

eval: ## Retrieval quality on the Python docs question set, per search mode (docs/retrieval.md)
	@scripts/setup.sh python corpus
	$(BIN)/concierge eval retrieval --questions bench/pydocs-dev.jsonl --corpus $(PYDOCS) --include '**/*.html' --mode all

bench: ## Print speed figures: embedding, ingestion, search at 100k chunks, operator (bench/README.md); asserts nothing
	@scripts/setup.sh python corpus cluster
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/ingest.py --corpus $(PYDOCS)
	$(BIN)/python bench/search.py --sizes 100000
	$(BIN)/python bench/reconcile.py

crds: ## Regenerate crds/ from the resource models
	$(BIN)/concierge crds

proto: ## Regenerate the gRPC stubs from proto/
	$(BIN)/python scripts/gen_proto.py

clean: ## Remove the local state (embedded database, logs) and build output
	rm -rf .concierge frontend/dist
