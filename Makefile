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

# The main job on the embedded default. Until the MEOW pipeline lands: convert SmolLM2 and smoke
# both engines on it.
run: venv
	$(VENV)/bin/meow models pull smollm2
	$(VENV)/bin/meow generate --model smollm2 "What is the capital of France?"
	$(VENV)/bin/meow generate --model smollm2 --engine hf "What is the capital of France?"

# The CI suite: real vLLM, Ray Data/Train/Serve on CPU, tiny random models.
test: venv system-deps
	$(PY) -m pytest -q

# Also the slow tests (SmolLM2 end to end).
test-all: venv system-deps
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf $(VENV) .pytest_cache
