# Entry points; each does its own set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv run test test-all system-deps clean

venv:
	@scripts/bootstrap.sh

# Debian packages the test suite uses (a real Prometheus). Installed only when missing.
system-deps:
	@scripts/system-deps.sh

# The main job on the embedded default: MEOW on TOFU forget01 with SmolLM2 on a local Ray
# (runs/tofu-forget01-smollm2/; a rerun resumes). The model is converted on first use.
run: venv
	$(VENV)/bin/meow unlearn pipelines/default.yaml

# The CI suite: real vLLM, Ray Data/Train/Serve on CPU, tiny random models.
test: venv system-deps
	$(PY) -m pytest -q

# Also the slow tests (SmolLM2 end to end).
test-all: venv system-deps
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf $(VENV) .pytest_cache
