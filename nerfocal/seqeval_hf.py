"""nerfocal's metrics dict in the shape of the ``evaluate`` library's ``seqeval`` metric.

``evaluate.load("seqeval").compute(...)`` returns
``{TYPE: {"precision", "recall", "f1", "number"}, "overall_precision", "overall_recall", "overall_f1",
"overall_accuracy"}``; the overall scores are seqeval's micro averages and ``overall_accuracy`` is
seqeval's ``accuracy_score``: the fraction of words whose predicted tag equals the gold tag, ``O``
included. :func:`nerfocal.metrics.entity_metrics` computes the same numbers with the same library, so
the conversion only renames keys; a dict without ``accuracy`` (written by other code) gets it computed
from the tags, when given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def to_hf_seqeval(
    metrics: Mapping[str, Any],
    *,
    gold: Sequence[Sequence[str]] | None = None,
    pred: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Convert :func:`~nerfocal.metrics.entity_metrics` output (or an ``eval_results.json`` split).

    Args:
        metrics: ``{"precision", "recall", "f1", "per_type": {type: {"precision", "recall", "f1",
            "support"}}}`` and, usually, ``"accuracy"``.
        gold: gold tags per sentence; only read when ``metrics`` has no ``"accuracy"``.
        pred: predicted tags per sentence, as ``gold``.

    Returns:
        The ``evaluate`` seqeval dict; per-type ``number`` is the gold support.

    Raises:
        ValueError: when a key is missing, or ``accuracy`` is missing and no tags are given.
    """
    for key in ("precision", "recall", "f1", "per_type"):
        if key not in metrics:
            raise ValueError(f"expected a nerfocal metrics dict with {key!r}, got keys {sorted(metrics)}")
    result: dict[str, Any] = {}
    for etype, scores in sorted(metrics["per_type"].items()):
        try:
            result[etype] = {
                "precision": float(scores["precision"]),
                "recall": float(scores["recall"]),
                "f1": float(scores["f1"]),
                "number": int(scores["support"]),
            }
        except KeyError as err:
            raise ValueError(
                f"per_type[{etype!r}]: expected precision, recall, f1, support, got no {err}"
            ) from None
    result["overall_precision"] = float(metrics["precision"])
    result["overall_recall"] = float(metrics["recall"])
    result["overall_f1"] = float(metrics["f1"])
    if "accuracy" in metrics:
        result["overall_accuracy"] = float(metrics["accuracy"])
    elif gold is not None and pred is not None:
        result["overall_accuracy"] = token_accuracy(gold, pred)
    else:
        raise ValueError(
            "expected 'accuracy' in the metrics, or gold and pred tags to compute it, got neither"
        )
    return result


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """seqeval's ``accuracy_score``: correct words / all words, ``O`` included (0.0 when there are none)."""
    if len(gold) != len(pred):
        raise ValueError(f"expected as many predicted sentences as gold ones ({len(gold)}), got {len(pred)}")
    total = correct = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: expected {len(g)} predicted tags (one per word), got {len(p)}")
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p, strict=True))
    return correct / total if total else 0.0
