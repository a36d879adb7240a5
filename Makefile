# The two commands a newcomer needs: `make demo` and `make test`. Everything else is their setup.
PULUMI_VERSION := v3.274.1
UV_VERSION := 0.13.8

UV := .tools/uv-$(UV_VERSION)/bin/uv
PULUMI_BIN := .tools/pulumi/$(PULUMI_VERSION)/bin
MODEL := .cache/models/tiny-qwen2
SHELL := /bin/bash

.PHONY: setup demo test test-quick bench bench-quick model clean-state

setup: .venv/.synced $(PULUMI_BIN)/.installed .pulumi/passphrase

$(UV):
	python3 -m venv .tools/uv-$(UV_VERSION)
	.tools/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python python3.11
	touch $@

$(PULUMI_BIN)/.installed: tools/setup-pulumi.sh tools/pulumi_language_python.py tools/pulumi-cli/go.sum .venv/.synced
	tools/setup-pulumi.sh
	touch $@

.pulumi/passphrase:
	mkdir -p .pulumi/state .pulumi/home && umask 077 && head -c 32 /dev/urandom | base64 > $@

model: $(MODEL)/config.json

$(MODEL)/config.json: models/tiny_model.py .venv/.synced
	.venv/bin/python -m models.tiny_model --out $(MODEL)

demo: setup model
	tools/demo.sh

test: setup model
	source env.sh && pytest -ra

test-quick: setup model
	source env.sh && pytest -ra -m "not engine and not lab and not slow"

bench: setup model
	source env.sh && python -m bench

bench-quick: setup model
	source env.sh && python -m bench --quick
