# Everything the tests need is installed here, pinned, into .tools/ (git-ignored).
SHELL := /bin/bash
TOOLS := .tools
VENV := $(TOOLS)/venv
NODE_TOOLS := $(TOOLS)/node
SAM_VENV := $(TOOLS)/sam
BENCH_VENV := $(TOOLS)/bench
# cargo-mutants, pinned; only `make mutants` needs it.
MUTANTS_VERSION := 27.1.0
MUTANTS := $(TOOLS)/cargo/bin/cargo-mutants
SAM := $(abspath $(SAM_VENV))/bin/sam
PYTHON ?= python3
HANDLERS := find-snapshot restore check-available patch-dblab poll-refresh delete-clone record notify
# SAM runs offline for validation; these only keep it from asking or phoning home.
export SAM_CLI_TELEMETRY := 0
# Scenarios mostly wait on polls; more threads than cores keeps the suite short.
export RUST_TEST_THREADS ?= 8

.PHONY: help tools test lint docs validate validate-asl build bench mutants deploy deploy-publisher destroy clean demo demo-aurora demo-failure demo-cross-account

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: $(VENV)/.installed $(NODE_TOOLS)/.installed $(SAM_VENV)/.installed $(BENCH_VENV)/.installed ## Install the pinned tools (moto, cargo-lambda, asl-validator, SAM CLI, the benchmark's boto3 baseline) into .tools/

$(VENV)/.installed: tests/tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/tools/requirements.txt
	touch $@

# The SAM CLI pins another boto3 than moto: a venv of its own.
$(SAM_VENV)/.installed: infra/requirements.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r infra/requirements.txt
	touch $@

# The benchmark's Python/boto3 baseline (`make bench`, and its smoke pass in `make test`).
$(BENCH_VENV)/.installed: tests/bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/bench/requirements.txt
	touch $@

$(NODE_TOOLS)/.installed: tests/tools/node/package.json tests/tools/node/package-lock.json
	mkdir -p $(NODE_TOOLS)
	cp tests/tools/node/package.json tests/tools/node/package-lock.json $(NODE_TOOLS)/
	npm ci --prefix $(NODE_TOOLS) --silent --no-audit --no-fund
	touch $@

test: tools lint validate ## Formatting, clippy, template and ASL checks, unit, integration and end-to-end tests
	cargo test --workspace --locked

bench: build $(BENCH_VENV)/.installed ## Measure cold start, memory, warm cost, orchestration cost and package sizes (host and arm64 release builds: about 55 min from clean on 2 cores)
	cargo build --release --locked $(addprefix --bin ,$(HANDLERS))
	mkdir -p target/bench
	set -o pipefail; cargo bench --locked -p refresh-tests --bench bench | tee target/bench/report.md

$(MUTANTS):
	cargo install --locked --quiet --version $(MUTANTS_VERSION) --root $(TOOLS)/cargo cargo-mutants

mutants: $(MUTANTS) ## Mutation score of every module of refresh-core but its named I/O (.cargo/mutants.toml; about 3 h on 2 cores; not part of make test)
	rm -rf target/mutants
	PATH=$(abspath $(TOOLS)/cargo/bin):$$PATH cargo mutants --jobs 2 --output target/mutants || true
	$(PYTHON) tests/tools/mutants_score.py target/mutants/mutants.out/outcomes.json --at-least 90

demo: ## A complete refresh on the local emulated stack (no AWS account needed)
demo-aurora: ## The demo, from an Aurora cluster
demo-failure: ## The demo of a refresh that fails mid-dump and is cleaned up
demo-cross-account: ## The demo with production in its own account: its publisher shares snapshot copies, the refresh stack restores from them
# One recipe for the four: the variant is what follows `demo-` (none for `demo`).
demo demo-aurora demo-failure demo-cross-account: $(VENV)/.installed
	cargo build --locked -p dblab-refresh --bin dblab-refresh
	cargo build --locked -p refresh-tests --example demo
	target/debug/examples/demo $(patsubst demo%,%,$(patsubst demo-%,%,$@))

validate: validate-asl ## cfn-lint, sam validate --lint, the templates/code consistency check (stack and publisher), asl-validator, the docs' links
	$(SAM_VENV)/bin/cfn-lint infra/template.yaml infra/publisher.yaml
	cd infra && for t in template.yaml publisher.yaml; do AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline $(SAM) validate --lint -t $$t || exit 1; done
	$(SAM_VENV)/bin/python infra/check_template.py
	$(SAM_VENV)/bin/python infra/check_template.py --self-test
	$(SAM_VENV)/bin/python tests/tools/check_links.py
	$(SAM_VENV)/bin/python tests/tools/check_links.py --self-test

validate-asl: tools ## asl-validator on the state machine files
	for f in statemachine/*.asl.json; do $(NODE_TOOLS)/node_modules/.bin/asl-validator --json-path $$f || exit 1; done

docs: ## Rewrite the generated parts of docs/ (the request field reference) from the code
	UPDATE_DOCS=1 cargo test --locked -p refresh-core --lib -- the_docs_reference_is_the_table

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build: $(VENV)/.installed ## Release arm64 Lambda packages: target/lambda/<handler>/bootstrap.zip (the publisher too)
	rustup target add aarch64-unknown-linux-gnu
	PATH=$(abspath $(VENV))/bin:$$PATH cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(HANDLERS)) --bin publish-snapshot

deploy: tools ## sam build + sam deploy (guided the first time, saving infra/samconfig.toml)
	rustup target add aarch64-unknown-linux-gnu
	cd infra && PATH=$(abspath $(VENV))/bin:$$PATH $(SAM) build -t template.yaml
	cd infra && if [ -f samconfig.toml ]; then $(SAM) deploy; else $(SAM) deploy --guided --capabilities CAPABILITY_IAM; fi

deploy-publisher: tools ## In PRODUCTION's account: build and deploy infra/publisher.yaml (guided the first time, saving infra/samconfig-publisher.toml)
	rustup target add aarch64-unknown-linux-gnu
	cd infra && PATH=$(abspath $(VENV))/bin:$$PATH $(SAM) build -t publisher.yaml --build-dir .aws-sam/publisher
	cd infra && if [ -f samconfig-publisher.toml ]; then $(SAM) deploy --config-file samconfig-publisher.toml --template-file .aws-sam/publisher/template.yaml; else $(SAM) deploy --guided --config-file samconfig-publisher.toml --template-file .aws-sam/publisher/template.yaml --capabilities CAPABILITY_IAM; fi

destroy: tools ## Delete the deployed stack (the history table is retained)
	cd infra && $(SAM) delete

clean: ## Remove build output and installed tools
	cargo clean
	rm -rf $(TOOLS)
