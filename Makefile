# Everything the tests need is installed here, pinned, into .tools/ (git-ignored).
SHELL := /bin/bash
TOOLS := .tools
VENV := $(TOOLS)/venv
NODE_TOOLS := $(TOOLS)/node
PYTHON ?= python3
# Scenarios mostly wait on polls; more threads than cores keeps the suite short.
export RUST_TEST_THREADS ?= 8

.PHONY: help tools test lint validate-asl build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: $(VENV)/.installed $(NODE_TOOLS)/.installed ## Install the pinned test tools (moto, cargo-lambda, asl-validator) into .tools/

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/requirements.txt
	touch $@

$(NODE_TOOLS)/.installed: tests/node/package.json tests/node/package-lock.json
	mkdir -p $(NODE_TOOLS)
	cp tests/node/package.json tests/node/package-lock.json $(NODE_TOOLS)/
	npm ci --prefix $(NODE_TOOLS) --silent --no-audit --no-fund
	touch $@

test: tools lint validate-asl ## Formatting, clippy, the ASL check, unit, integration and end-to-end tests
	cargo test --workspace --locked

validate-asl: tools ## asl-validator on the state machine files
	for f in statemachine/*.asl.json; do $(NODE_TOOLS)/node_modules/.bin/asl-validator --json-path $$f || exit 1; done

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build: ## Debug build of every crate
	cargo build --workspace --locked

clean: ## Remove build output and installed tools
	cargo clean
	rm -rf $(TOOLS)
