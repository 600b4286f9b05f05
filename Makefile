# relances: the two commands a newcomer needs are `make dev` and `make test`.
SHELL := /bin/bash
VENV := .venv
TOOLS := $(VENV)/.installed

.PHONY: dev test tick lint bench fuzz fmt clean-dev

## dev: run the whole service locally (moto, marketplace stub, both functions); Ctrl-C stops it
dev: $(TOOLS)
	scripts/dev.sh

## test: formatting, lints, unit and integration tests against local stand-ins
test: $(TOOLS)
	scripts/test.sh

## tick AT=<RFC 3339>: one scheduler run at that time against a running `make dev`
tick:
	scripts/tick.sh "$(AT)"

## fuzz: a long schemathesis campaign against the API (make test runs a short one)
fuzz: $(TOOLS)
	scripts/fuzz.sh $(or $(EXAMPLES),300)

## bench: release builds and every benchmark figure, written to docs/benchmarks.md
bench: $(TOOLS)
	scripts/bench.sh

## lint: cfn-lint and sam validate on the SAM template
lint: $(TOOLS)
	$(VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file infra/template.yaml

fmt:
	cargo fmt --all

# Python tools (moto, cargo-lambda, cfn-lint, SAM CLI, schemathesis) from PyPI, pinned, in a local venv.
$(TOOLS): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean-dev:
	rm -rf .dev
