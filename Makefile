# The two commands a newcomer needs: `make demo` and `make test`. Everything else is their setup.
PULUMI_VERSION := v3.274.1
UV_VERSION := 0.13.8

UV := .tools/uv-$(UV_VERSION)/bin/uv
PULUMI_BIN := .tools/pulumi/$(PULUMI_VERSION)/bin
MODEL := .cache/models/tiny-qwen2
SHELL := /bin/bash

.PHONY: setup system-packages doctor demo demo-down lint test test-quick bench bench-quick model

setup: system-packages .venv/.synced $(PULUMI_BIN)/.installed .pulumi/passphrase

# The controller's system packages (tools/system-packages.tsv): installed when missing as root,
# else one message with the apt-get line. Every later step may rely on them.
system-packages:
	tools/system-packages.sh install

# What the controller has and lacks, with versions.
doctor:
	tools/system-packages.sh doctor

$(UV): | system-packages
	python3.11 -m venv .tools/uv-$(UV_VERSION)
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

# Undo `make demo`: destroy the dev stack's resources, then the lab hosts.
demo-down: setup
	tools/demo.sh down

# Undefined or unused names and import order (pyproject.toml's [tool.ruff]): what moving code breaks first.
lint: setup
	.venv/bin/ruff check .

# --durations: the slowest tests by name, so a suite nearing CI's 90 minutes shows where the time goes.
test: setup model lint
	source env.sh && pytest -ra --durations=25

test-quick: setup model
	source env.sh && pytest -ra -m "not engine and not lab and not slow"

bench: setup model
	source env.sh && python -m bench

bench-quick: setup model
	source env.sh && python -m bench --quick
