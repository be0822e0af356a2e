# Everything the tests need is installed here, pinned, into .tools/ (git-ignored).
SHELL := /bin/bash
TOOLS := .tools
VENV := $(TOOLS)/venv
PYTHON ?= python3

.PHONY: help tools test lint unit-test build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: $(VENV)/.installed ## Install the pinned test tools (moto server) into .tools/

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/requirements.txt
	touch $@

test: tools lint ## Formatting, clippy, unit and integration tests
	cargo test --workspace --locked

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build: ## Debug build of every crate
	cargo build --workspace --locked

clean: ## Remove build output and installed tools
	cargo clean
	rm -rf $(TOOLS)
