#!/usr/bin/env bash
# Install nerfocal with its test tools into .venv (created if missing) and run lint, types and tests.
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch 2.13.0 is the CPU build on these machines; a plain `torch` would pull a multi-GB CUDA build
python -m pip install -q "torch==2.13.0" || python -m pip install -q torch
python -m pip install -q -e ".[dev]"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check nerfocal scripts tests benchmarks
ruff format --check nerfocal scripts tests benchmarks
mypy
python -m pytest -q "$@"
