"""Fine-tune an encoder for NER with focal loss.

    python scripts/train_ner.py configs/minilm_conll2003.yaml
    accelerate launch scripts/train_ner.py configs/minilm_conll2003.yaml --num_train_epochs 1
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/train_ner.py configs/X.yaml

A thin wrapper around ``nerfocal.cli.train.main`` (same options as ``nerfocal train``).
"""

import sys

from nerfocal.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
