"""Entity-level scores (seqeval) and token-level calibration (ECE, NLL, temperature scaling).

Entity scores follow conlleval: an entity counts as correct only when its type and both boundaries
match. ``strict=True`` uses seqeval's strict IOB2 mode, where an invalid chunk (``I-X`` after ``O``)
is an error instead of being read as the start of an entity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nerfocal.labels import IGNORE_INDEX

ECE_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)  # the range of a fitted temperature


def entity_metrics(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *, strict: bool = False
) -> dict[str, Any]:
    """Micro P/R/F1, macro F1 over types, per-type scores and token accuracy.

    Args:
        gold: gold tags per sentence (IOB2 or BIOES).
        pred: predicted tags per sentence, each of the same length as its gold sequence.
        strict: seqeval strict mode (IOB2 scheme, or BIOES when the tags use E-/S-).

    Returns:
        ``{"precision", "recall", "f1", "macro_f1", "accuracy", "per_type": {type: {...}}}``.

    Raises:
        ValueError: when the numbers of sentences or of words in a sentence differ.
    """
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOB2, IOBES

    if len(gold) != len(pred):
        raise ValueError(f"expected as many predicted sentences as gold ones ({len(gold)}), got {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: expected {len(g)} predicted tags (one per word), got {len(p)}")
    gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
    kwargs: dict[str, Any] = {"output_dict": True, "zero_division": 0}
    if strict:
        bioes = any(t[:2] in ("E-", "S-") for seq in gold_l + pred_l for t in seq)
        kwargs.update(mode="strict", scheme=IOBES if bioes else IOB2)
    has_chunks = any(t != "O" for seq in gold_l + pred_l for t in seq)
    report = classification_report(gold_l, pred_l, **kwargs) if has_chunks else {}
    per_type = {
        k: {
            "precision": v["precision"],
            "recall": v["recall"],
            "f1": v["f1-score"],
            "support": int(v["support"]),
        }
        for k, v in report.items()
        if not k.endswith(" avg")
    }
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    macro = report.get("macro avg", {"f1-score": 0.0})
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "macro_f1": float(macro["f1-score"]),
        "accuracy": float(accuracy_score(gold_l, pred_l)) if any(gold_l) else 0.0,
        "per_type": per_type,
    }


def calibration_metrics(
    logits: np.ndarray, labels: np.ndarray, *, temperature: float = 1.0, n_bins: int = ECE_BINS
) -> dict[str, float]:
    """Token-level expected calibration error and negative log-likelihood.

    Args:
        logits: float array ``[N, C]`` (or ``[B, S, C]``).
        labels: int array ``[N]`` (or ``[B, S]``); positions equal to IGNORE_INDEX (-100) are left out.
        temperature: logits are divided by it before the softmax.
        n_bins: equal-width confidence bins over [0, 1].

    Returns:
        ``{"ece", "nll", "tokens"}``. ECE = sum over bins of (bin size / N) * |accuracy - mean confidence|,
        with confidence = the maximum softmax probability.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    flat_logits = logits.reshape(-1, logits.shape[-1])  # [N, C]
    flat_labels = labels.reshape(-1)  # [N]
    keep = flat_labels != IGNORE_INDEX
    z = flat_logits[keep] / temperature
    y = flat_labels[keep].astype(np.int64)
    if len(y) == 0:
        return {"ece": 0.0, "nll": 0.0, "tokens": 0}
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # [N, C]
    nll = float(-log_probs[np.arange(len(y)), y].mean())
    probs = np.exp(log_probs)
    return {
        "ece": expected_calibration_error(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins),
        "nll": nll,
        "tokens": len(y),
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE over equal-width bins ``(k/n, (k+1)/n]`` (a confidence of exactly 0 falls in the first bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def temperature_fit_problem(logits: np.ndarray, labels: np.ndarray) -> str | None:
    """Why the dev set cannot identify a temperature, or None when it can.

    When every non-ignored token is predicted right, the NLL falls without limit as T shrinks (a fit
    "finds" T near 0, an over-confident model); with a single gold label (an all-``O`` dev set) the fit
    only learns to be confident about that label. Either way there is nothing to calibrate on.
    """
    flat_logits = np.asarray(logits).reshape(-1, np.asarray(logits).shape[-1])  # [N, C]
    flat_labels = np.asarray(labels).reshape(-1)  # [N]
    keep = flat_labels != IGNORE_INDEX
    y = flat_labels[keep]
    if len(y) == 0:
        return "no labelled tokens"
    if len(np.unique(y)) < 2:
        return f"every token has the same gold label (id {int(y[0])}), e.g. an all-O dev set"
    if bool((flat_logits[keep].argmax(axis=-1) == y).all()):
        return "the model gets every token right, so the NLL falls without limit as T shrinks"
    return None


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    max_iter: int = 100,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """One softmax temperature T that minimises the NLL of the non-ignored tokens (Guo et al., 2017).

    Args:
        logits: float array ``[N, C]`` (or ``[B, S, C]``).
        labels: int array ``[N]`` (or ``[B, S]``); IGNORE_INDEX positions are left out.
        bounds: T is kept in ``[low, high]``. The NLL is convex in 1/T, so clipping the unconstrained
            optimum gives the optimum within the bounds.

    Optimised over log T with L-BFGS, so T stays positive. Returns 1.0 when the data cannot identify T
    (:func:`temperature_fit_problem`) or when the fit does not lower the NLL.
    """
    import torch

    if temperature_fit_problem(logits, labels) is not None:
        return 1.0
    flat_logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64).reshape(
        -1, np.asarray(logits).shape[-1]
    )
    flat_labels = torch.as_tensor(np.asarray(labels)).reshape(-1).long()
    keep = flat_labels != IGNORE_INDEX
    z, y = flat_logits[keep], flat_labels[keep]
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(z, y).item()
        t = float(log_t.exp())
        if not math.isfinite(t):
            return 1.0
        t = min(max(t, bounds[0]), bounds[1])
        after = torch.nn.functional.cross_entropy(z / t, y).item()
    return t if after <= before else 1.0


def format_report(metrics: dict[str, Any], title: str = "") -> str:
    """A readable table: per-type and overall P/R/F1 (percent), macro F1, calibration when present."""
    lines = [title] if title else []
    lines.append(f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for etype, m in sorted(metrics.get("per_type", {}).items()):
        lines.append(f"{etype:<16}{_row(m)}{m['support']:>10d}")
    lines.append(f"{'micro avg':<16}{_row(metrics)}")
    lines.append(f"{'macro avg f1':<16}{'':>20}{100 * metrics['macro_f1']:>10.2f}")
    for key in ("ece", "nll", "ece_before_temperature", "temperature"):
        if key in metrics:
            lines.append(f"{key}: {metrics[key]:.4f}")
    return "\n".join(lines)


def _row(m: dict[str, Any]) -> str:
    return f"{100 * m['precision']:>10.2f}{100 * m['recall']:>10.2f}{100 * m['f1']:>10.2f}"
