#!/usr/bin/env bash
# The embedded default, end to end: fine-tune the packaged MiniLM encoder on data/sample with focal
# loss, print the seqeval report, then tag a few sentences with `nerfocal predict`.
#   bash scripts/demo.sh
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
python -m pip install -q -e ".[minilm,plot]"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== training MiniLM with focal loss on data/sample (configs/sample.yaml) =="
nerfocal train configs/sample.yaml --disable_tqdm true --output_dir outputs/sample 2> outputs_sample_train.log \
  || { tail -n 30 outputs_sample_train.log; exit 1; }
mv -f outputs_sample_train.log outputs/sample/train.log

echo
echo "== nerfocal predict on a few sentences =="
printf '%s\n' \
  "Priya Okafor , a spokesperson for Meridian Bank , said the deal was signed in Lisbon ." \
  "Thousands of visitors came to the Lantern Fair in Hanoi on Friday ." \
  "Felix Berger joined Cobalt Systems last spring ." \
  | nerfocal predict --model outputs/sample --quiet
