"""What every nerfocal loss shares: input checks, the float32 log-softmax, reductions, the focal factor.

The bottom layer of :mod:`nerfocal.losses` (every loss module imports it, it imports none of them).

Shared conventions (see ``docs/losses.md``):
    * ``logits``: float tensor ``[B, S, C]`` or ``[N, C]``; ``labels``: integer tensor ``[B, S]`` /
      ``[N]``, ``IGNORE_INDEX`` (-100) where a position is excluded.
    * Math runs in float32 from ``log_softmax`` whatever the logits' dtype (float64 stays float64,
      for gradcheck); the result is float32 (float64).
    * ``alpha``: optional float tensor ``[C]``, a per-token weight ``alpha[label]`` multiplied into
      each term. It never enters the denominator of ``"mean"``.
    * ``reduction``: ``"none"`` gives the per-position loss with the labels' shape and 0 at ignored
      positions; ``"sum"`` sums the valid positions; ``"mean"`` is that sum divided by the number
      of valid positions. A batch with no valid position gives 0 that still has a gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfocal.labels import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "REDUCTIONS"]

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"expected reduction in {REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_range(
    name: str, value: object, lo: float, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = True
) -> float:
    """Return ``float(value)`` if it is finite and inside the interval, else raise ValueError."""
    try:
        x = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    inside = (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not (math.isfinite(x) and inside):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(f"expected {name} in {interval}, got {value!r}")
    return x


def _check_alpha(alpha: object, num_classes: int | None = None) -> Tensor:
    if not isinstance(alpha, Tensor):
        raise ValueError(
            "expected alpha as a float tensor [C] or None (resolve_alpha builds one from a list, dict, "
            f"scalar or 'auto'), got {type(alpha).__name__}"
        )
    if alpha.ndim != 1 or (num_classes is not None and alpha.numel() != num_classes):
        expected = "[C]" if num_classes is None else f"[{num_classes}]"
        raise ValueError(f"expected alpha of shape {expected}, got {list(alpha.shape)}")
    if alpha.is_complex() or not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()):
        raise ValueError(f"expected alpha weights finite and >= 0, got {alpha.tolist()}")
    return alpha


class _Batch(NamedTuple):
    log_probs: Tensor  # [M, C] float32 (float64), valid positions only
    target: Tensor  # [M] long, in [0, C)
    weight: Tensor | None  # [M] alpha[target], or None
    valid: Tensor  # [N] bool, N = number of positions
    shape: torch.Size  # leading shape of the logits, e.g. [B, S]


def _prepare(logits: Tensor, labels: Tensor, alpha: Tensor | None) -> _Batch:
    """Check inputs, keep the valid positions and take ``log_softmax`` in float32 (float64)."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim < 2:
        got = f"{logits.dtype} {list(logits.shape)}" if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"expected logits as a float tensor [B, S, C] or [N, C], got {got}")
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ValueError(f"expected at least 2 classes in the last dim of logits, got {num_classes}")
    if (
        not isinstance(labels, Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or (labels.dtype == torch.bool)
    ):
        got = str(labels.dtype) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"expected labels as an integer tensor, got {got}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"expected labels of shape {list(logits.shape[:-1])} (logits without C), got {list(labels.shape)}"
        )
    flat = labels.to(logits.device).reshape(-1).long()  # [N]
    valid = flat != IGNORE_INDEX  # [N]
    target = flat[valid]  # [M]
    bad = (target < 0) | (target >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"expected labels in [0, {num_classes}) or IGNORE_INDEX={IGNORE_INDEX}, got {int(target[bad][0])}"
        )
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    # select before computing: ignored positions never enter the math, so they cannot bring NaNs
    log_probs = F.log_softmax(logits.reshape(-1, num_classes)[valid].to(dtype), dim=-1)  # [M, C]
    weight = None
    if alpha is not None:
        weight = _check_alpha(alpha, num_classes).to(device=logits.device, dtype=dtype)[target]  # [M]
    return _Batch(log_probs, target, weight, valid, logits.shape[:-1])


def _true_log_prob(batch: _Batch) -> Tensor:
    """``log p_t`` of the true class, ``[M]``."""
    return batch.log_probs.gather(1, batch.target[:, None]).squeeze(1)


def _reduce(loss: Tensor, batch: _Batch, reduction: str) -> Tensor:
    """Weight the per-token ``loss`` ``[M]`` by alpha and reduce it; the one place that normalises."""
    if batch.weight is not None:
        loss = loss * batch.weight
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        # the denominator counts positions, not alpha weights (unlike F.cross_entropy(weight=...));
        # an empty batch gives 0 / 1 = 0, and loss.sum() keeps the graph to the logits
        return loss.sum() / batch.valid.sum().clamp(min=1).to(loss.dtype)
    full = loss.new_zeros(batch.valid.shape).masked_scatter(batch.valid, loss)  # [N]
    return full.reshape(batch.shape)  # [B, S] / [N]


def _focal_factor(log_pt: Tensor, gamma: float | Tensor) -> Tensor:
    """``(1 - p_t) ** gamma`` with a finite value and gradient for every gamma >= 0, even at p_t = 1."""
    # -expm1(log p_t) keeps 1 - p_t accurate near p_t = 1; the clamp avoids 0 ** (gamma - 1) = inf in the
    # backward pass when gamma < 1 (the clamped branch passes no gradient, so values are unchanged)
    one_minus_pt = (-torch.expm1(log_pt)).clamp(min=torch.finfo(log_pt.dtype).tiny)
    return one_minus_pt.pow(gamma)


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


class _TokenLoss(nn.Module):
    """Stores ``alpha`` (a non-persistent buffer, so it follows ``.to()``) and ``reduction``."""

    alpha: Tensor | None

    def __init__(self, alpha: Tensor | None, reduction: str) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.register_buffer("alpha", None if alpha is None else _check_alpha(alpha), persistent=False)
