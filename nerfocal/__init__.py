"""nerfocal: named-entity recognition with Hugging Face encoders and focal loss.

The public API (everything the command lines use, importable from a notebook)::

    from nerfocal import Predictor, parse_config, train
    result = train(*parse_config(["configs/sample.yaml", "--num_train_epochs", "1"]))
    Predictor.from_pretrained(result.output_dir)(["Anna Novak joined Orion Labs ."])

Names are loaded on first use, so ``import nerfocal`` stays instant (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Predictor": "nerfocal.predict",
    "Document": "nerfocal.words",
    "FocalLossTrainer": "nerfocal.trainer",
    "focal_loss": "nerfocal.losses",
    "FocalLoss": "nerfocal.losses",
    "compute_loss": "nerfocal.losses",
    "LOSSES": "nerfocal.losses",
    "train": "nerfocal.training",
    "TrainResult": "nerfocal.training",
    "prepare_data": "nerfocal.training",
    "build_model": "nerfocal.training",
    "build_trainer": "nerfocal.training",
    "evaluate_predictor": "nerfocal.evaluate",
    "read_gold": "nerfocal.evaluate",
    "ModelConfig": "nerfocal.config",
    "DataConfig": "nerfocal.config",
    "LossConfig": "nerfocal.config",
    "NerTrainingArguments": "nerfocal.config",
    "parse_config": "nerfocal.config",
    "load_ner_data": "nerfocal.data",
    "entity_metrics": "nerfocal.metrics",
    "write_report": "nerfocal.report",
    "convert": "nerfocal.formats",
    "read_sentences": "nerfocal.formats",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nerfocal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
