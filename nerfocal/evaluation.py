"""Evaluate a model inside a training run: predict windows, rejoin words, score entities and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nerfocal.conll import Sentence
from nerfocal.data import IGNORE_INDEX, Window, word_predictions
from nerfocal.metrics import calibration_metrics, entity_metrics


def score_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    windows: Sequence[Window],
    sentences: Sequence[Sentence],
    id2label: dict[int, str],
    *,
    strict: bool = False,
    temperature: float = 1.0,
) -> tuple[dict[str, Any], list[list[str]]]:
    """Entity metrics of the argmax predictions plus token-level ECE/NLL.

    Args:
        logits: float array ``[N, S, C]`` (one row per window, padded).
        labels: int array ``[N, S]``, IGNORE_INDEX where excluded (padding included).
        windows: where each row comes from (see :func:`nerfocal.data.encode_sentences`).
        sentences: the gold sentences.
        id2label: label names.

    Returns:
        ``(metrics, predicted tags per sentence)``.
    """
    preds = logits.argmax(-1)  # [N, S]
    tags = word_predictions(windows, preds, sentences, id2label)
    gold = [s.tags or [] for s in sentences]
    metrics = entity_metrics(gold, tags, strict=strict)
    metrics.update(calibration_metrics(logits, labels, temperature=temperature))
    return metrics, tags


def predict_logits(trainer: Any, features: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Run ``trainer.predict`` (distributed-safe: every row gathered once) -> ``(logits, labels)``."""
    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None  # those are for the dev set
    try:
        output = trainer.predict(features, metric_key_prefix="predict")
    finally:
        trainer.compute_metrics = compute_metrics
    logits = np.asarray(output.predictions, dtype=np.float32)
    labels = np.asarray(output.label_ids)
    labels = np.where(labels == IGNORE_INDEX, IGNORE_INDEX, labels)
    return logits, labels


def make_compute_metrics(
    windows: Sequence[Window], sentences: Sequence[Sentence], id2label: dict[int, str], strict: bool
) -> Any:
    """``compute_metrics`` for ``Trainer`` evaluations during training (dev F1 in the logs)."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        metrics, _ = score_logits(
            np.asarray(eval_pred.predictions),
            np.asarray(eval_pred.label_ids),
            windows,
            sentences,
            id2label,
            strict=strict,
        )
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    return compute_metrics
