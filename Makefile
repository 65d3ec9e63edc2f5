# nbaml - the local twin of `sam build / deploy / local invoke`, plus the checks CI runs.
# `make help` lists the targets. Everything runs from the repository root.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_SAM := .venv-sam
PY := $(VENV)/bin/python
SAM := $(VENV_SAM)/bin/sam
TEMPLATE := template.yaml
BUILD_DIR := .aws-sam/build
PORT ?= 5005
STAGE ?= dev

export SAM_CLI_TELEMETRY := 0

# sam build --use-... needs an interpreter matching the template's python3.12 runtime on PATH. A pyenv
# shim named python3.12 exists even when that version is not selected, so each candidate is run, not
# just found: the first that answers wins.
define find_python312
	dir=""; \
	if python3.12 -c 'import sys' >/dev/null 2>&1; then \
		dir="$$(dirname "$$(python3.12 -c 'import sys; print(sys.executable)')")"; \
	elif command -v pyenv >/dev/null 2>&1; then \
		for cand in "$$(pyenv root)"/versions/3.12*/bin; do \
			if [ -x "$$cand/python3.12" ]; then dir="$$cand"; fi; \
		done; \
	fi; \
	if [ -z "$$dir" ]; then \
		echo "sam build needs python3.12 (the template's runtime): put one on PATH or install it with pyenv" >&2; \
		exit 1; \
	fi
endef

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: venv
venv: $(VENV)/bin/python $(SAM) ## Create .venv (project, editable) and .venv-sam (aws-sam-cli), each only if missing.

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "nbaml needs Python >= 3.11"' \
		|| { echo "$(PYTHON) is older than 3.11: run make venv PYTHON=python3.11 (or newer)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[ml,local,dev]'

# aws-sam-cli pins its own boto3, so it lives apart from the project's environment.
$(SAM):
	$(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/pip install --upgrade pip
	$(VENV_SAM)/bin/pip install aws-sam-cli

.PHONY: stack-up
stack-up: ## Start the moto emulator on 127.0.0.1:$(PORT) and deploy template.yaml into it (STAGE=dev).
	$(VENV)/bin/nbaml stack up --port $(PORT) --stage $(STAGE)

.PHONY: stack-down
stack-down: ## Stop the emulator (the local stack lives only in its memory).
	$(VENV)/bin/nbaml stack down

.PHONY: lint
lint: ## ruff check (with the complexity gate: C90, PLR0915) + ruff format --check + cfn-lint + sam validate --lint.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint $(TEMPLATE)
	$(SAM) validate --lint --template $(TEMPLATE)

.PHONY: build
build: ## sam build (needs a python3.12; found on PATH or under pyenv).
	@$(find_python312); \
	echo "sam build with $$dir/python3.12"; \
	PATH="$$dir:$$PATH" $(SAM) build --template $(TEMPLATE)

.PHONY: size
size: ## After build: unzipped size of each function with its layers (fails above Lambda's 250 MB).
	$(PY) -m infra.size $(BUILD_DIR)

SHARED_GAMES ?= ../shared/data/nba_games_2009_2023.csv

.PHONY: run
run: $(VENV)/bin/python ## The main job: replay a synthetic season through the local stack (no AWS, no Docker, no file).
	$(PY) -m infra replay

.PHONY: run-real
run-real: $(VENV)/bin/python ## Replay the real 2022-23 season from the shared file; fails unless it beats always-home and Elo.
	$(PY) -m infra replay --source file --games $(SHARED_GAMES) --season 2022 --require-beat-baselines

.PHONY: test
test: $(VENV)/bin/python ## Every test: unit (moto decorators), integration (moto server), end-to-end (replays).
	$(PY) -m pytest

.PHONY: test-unit
test-unit: $(VENV)/bin/python ## Unit tests only (fast).
	$(PY) -m pytest tests/unit

.PHONY: evaluate
evaluate: $(VENV)/bin/python ## Walk-forward on the real 2021-22 and 2022-23 seasons against always-home and Elo.
	$(PY) -m nbaml.training.walkforward --games $(SHARED_GAMES)

.PHONY: bench
bench: $(VENV)/bin/python ## Every benchmark, each printing its figures against its target and baseline.
	$(PY) bench/bench_features.py
	$(PY) bench/bench_engine.py
	$(PY) bench/bench_retrain.py
	$(PY) bench/bench_serving.py
	$(PY) bench/bench_drift_rules.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_signal.py

.PHONY: bench-serving
bench-serving: $(VENV)/bin/python ## The serving benchmark alone (run make build first for the size row).
	$(PY) bench/bench_serving.py

.PHONY: rollback
rollback: ## Emergency rollback: make rollback VERSION=v1 [STAGE=dev] (infra/rollback.sh, unchecked).
	infra/rollback.sh $(VERSION) $(STAGE)

.PHONY: clean
clean: ## Remove build output, reports and caches (not the virtual environments).
	rm -rf .aws-sam reports .pytest_cache .ruff_cache .hypothesis

.PHONY: security
security: $(VENV)/bin/python ## bandit over what ships and operates the stack; pip-audit (see security/FINDINGS.md).
	$(VENV)/bin/bandit -q -r layers functions infra -c security/bandit.yaml -b security/bandit-baseline.json
	@# No vulnerability service answers for this machine's package mirror, so pip-audit cannot audit here
	@# (FINDINGS.md, P-01): it runs and reports; set PIP_AUDIT_FLAGS=--strict where it can reach one.
	$(VENV)/bin/pip-audit --progress-spinner off $(PIP_AUDIT_FLAGS) || [ -z "$(PIP_AUDIT_FLAGS)" ]
