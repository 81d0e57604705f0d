#!/usr/bin/env bash
# Install nerfocal with its test tools into .venv (created if missing) and run lint, types and tests.
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh "dev"
ruff check nerfocal scripts tests benchmarks examples
ruff format --check nerfocal scripts tests benchmarks examples
mypy
python -m pytest -q "$@"
