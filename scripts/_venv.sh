# Sourced by demo.sh and test.sh: create .venv if missing, activate it, install torch (CPU build
# where available) and nerfocal with the extras given as "$1" (e.g. "dev" or "minilm,plot").
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch 2.13.0 is the CPU build on these machines; a plain `torch` would pull a multi-GB CUDA build
python -m pip install -q "torch==2.13.0" || python -m pip install -q torch
python -m pip install -q -e ".[$1]"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
