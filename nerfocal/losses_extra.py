"""Margin, soft-margin and dice losses, and the checks and reductions that every nerfocal loss shares.

Import from :mod:`nerfocal.losses`, which re-exports the public names defined here. This module is
the lower layer so that imports run one way (``losses`` -> ``losses_extra``, never back).

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

IGNORE_INDEX = -100
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


def margin_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.6,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Cross-entropy with hard truncation: a token stops contributing once ``p_t > margin``.

    ``L = -alpha_t * lambda * log p_t`` with the weight of Su (2017, kexue.fm/archives/4733),
    ``lambda(y, y_hat) = 1 - theta(y - m) theta(y_hat - m) - theta(1 - m - y) theta(1 - m - y_hat)``,
    ``theta`` the unit step with ``theta(0) = 1/2``. With one-hot ``y`` the true-class component gives
    ``1 - theta(p_t - m)`` and a wrong class ``j`` gives ``1 - theta(1 - m - p_j)``. A token is
    truncated when its true class passes ``m`` and no wrong class is above ``1 - m``; for softmax
    outputs ``p_t > m`` already forces every ``p_j < 1 - m`` (they sum to ``1 - p_t``), so the token
    weight is ``lambda = 1 - theta(p_t - m)``, evaluated as ``log p_t`` against ``log m``.

    ``lambda`` is detached (a step has no useful gradient): the model is never told to *stay* above
    ``m``, tokens can drift back below it and train again, and training needs more steps than CE.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        margin: threshold ``m`` in ``(0.5, 1)``.
        alpha: optional float tensor ``[C]``, token weight ``alpha[label]``, not in the mean's denominator.
        reduction: ``"none"`` (``[B, S]`` / ``[N]``, 0 where ignored), ``"sum"`` or ``"mean"`` (sum / number
            of valid positions).

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on a margin outside ``(0.5, 1)``, an unknown reduction, bad shapes or labels.
    """
    m = _check_range("margin", margin, 0.5, 1.0, lo_open=True)
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    log_pt = _true_log_prob(batch)  # [M]
    half = torch.tensor(0.5, dtype=log_pt.dtype, device=log_pt.device)
    lam = 1.0 - torch.heaviside(log_pt.detach() - math.log(m), half)  # [M], 0 once p_t > m
    return _reduce(-lam * log_pt, batch, reduction)


def soft_margin_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.6,
    k: float = 10.0,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""The margin loss with the step softened into a sigmoid, so that the weight is differentiable.

    ``L = -alpha_t * sigmoid(-k (z_t - logit(m))) * log p_t`` with ``z_t = log p_t - log(1 - p_t)`` the
    true class's log-odds and ``log(1 - p_t) = logsumexp_{j != t} log p_j`` (exact, also at p_t = 1).
    The step is taken in log-odds space (Su 2017): ``theta(p_t - m) = theta(z_t - logit(m))`` is
    replaced by ``sigmoid(k (z_t - logit(m)))``, so ``k -> inf`` recovers :func:`margin_loss` exactly
    (including ``1/2`` at ``p_t = m``). The weight is *not* detached. For two classes ``z_t`` is the
    signed logit and the loss is :func:`binary_soft_margin_loss`; at ``m = 0.5`` and ``k = 1`` that is
    ``-sigmoid(-x) log sigmoid(x)``, binary focal loss with ``gamma = 1``.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        margin: threshold ``m`` in ``(0.5, 1)``.
        k: sharpness ``> 0``; larger is closer to the hard step.
        alpha: optional float tensor ``[C]``, token weight ``alpha[label]``, not in the mean's denominator.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``, as in :func:`margin_loss`.

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on a margin outside ``(0.5, 1)``, ``k <= 0``, an unknown reduction, bad shapes or labels.
    """
    m = _check_range("margin", margin, 0.5, 1.0, lo_open=True)
    k = _check_range("k", k, 0.0, lo_open=True)
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    log_pt = _true_log_prob(batch)  # [M]
    others = batch.log_probs.scatter(1, batch.target[:, None], -math.inf)  # [M, C], true class masked
    log_odds = log_pt - torch.logsumexp(others, dim=-1)  # [M]
    lam = torch.sigmoid(-k * (log_odds - _logit(m)))  # [M]
    return _reduce(-lam * log_pt, batch, reduction)


def dice_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    power: float = 1.0,
    smooth: float = 1.0,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Token-level self-adjusting dice loss (Li et al., 2020, "Dice Loss for Data-imbalanced NLP Tasks").

    ``L = 1 - (2 q + g) / (q + 1 + g) = (1 - q) / (1 + q + g)``, ``q = (1 - p_t) ** power * p_t``,
    ``g = smooth``, per token, weighted by ``alpha_t``. The paper's ``alpha`` is ``power`` here and its
    ``gamma`` is ``smooth``. For ``power > 0`` the per-token loss is smallest at
    ``p_t = 1 / (1 + power)``, not at ``p_t = 1``: confident tokens are pushed back, which is the
    self-adjusting down-weighting of easy examples. ``power = 0`` gives a loss decreasing in ``p_t``.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        power: exponent of ``(1 - p_t)``, ``>= 0``.
        smooth: additive smoothing, ``>= 0``.
        alpha: optional float tensor ``[C]``, token weight ``alpha[label]``, not in the mean's denominator.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``, as in :func:`margin_loss`.

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on a negative power or smooth, an unknown reduction, bad shapes or labels.
    """
    a = _check_range("power", power, 0.0)
    g = _check_range("smooth", smooth, 0.0)
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    log_pt = _true_log_prob(batch)  # [M]
    q = log_pt.exp() if a == 0 else _focal_factor(log_pt, a) * log_pt.exp()  # [M]
    return _reduce((1.0 - q) / (1.0 + q + g), batch, reduction)


def _binary_log_odds(logits: Tensor, targets: Tensor) -> Tensor:
    """Log-odds of the true class, ``x`` where the target is 1 and ``-x`` where it is 0."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError(f"expected logits as a float tensor, got {getattr(logits, 'dtype', type(logits))}")
    if not isinstance(targets, Tensor) or targets.shape != logits.shape:
        got = list(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"expected targets of shape {list(logits.shape)}, got {got}")
    if bool(((targets != 0) & (targets != 1)).any()):
        raise ValueError("expected targets in {0, 1}, got other values")
    x = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
    return torch.where(targets.to(device=x.device) == 1, x, -x)


def _reduce_dense(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def binary_focal_loss(
    logits: Tensor, targets: Tensor, *, gamma: float = 2.0, reduction: str = "mean"
) -> Tensor:
    """Sigmoid focal loss ``-(1 - p_t) ** gamma * log p_t`` without alpha (Lin et al., 2017).

    Args:
        logits: float tensor of any shape ``[*]``.
        targets: tensor ``[*]`` with values in ``{0, 1}``.
        gamma: focusing parameter ``>= 0``.
        reduction: ``"none"`` (shape ``[*]``), ``"sum"`` or ``"mean"`` over all elements.

    Returns:
        float32 tensor, scalar or shape ``[*]``.
    """
    gamma = _check_range("gamma", gamma, 0.0)
    _check_reduction(reduction)
    log_pt = F.logsigmoid(_binary_log_odds(logits, targets))
    loss = -log_pt if gamma == 0 else -_focal_factor(log_pt, gamma) * log_pt
    return _reduce_dense(loss, reduction)


def binary_soft_margin_loss(
    logits: Tensor, targets: Tensor, *, k: float = 10.0, margin: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """Binary soft margin ``-sigmoid(-k (z - logit(m))) log sigmoid(z)``, ``z`` the true class's log-odds.

    At ``m = 0.5``: ``-sigmoid(-k x) log sigmoid(x)`` for target 1 and ``-sigmoid(k x) log sigmoid(-x)``
    for target 0 (Su, 2017); with ``k = 1`` this equals :func:`binary_focal_loss` with ``gamma = 1``.

    Args:
        logits: float tensor of any shape ``[*]``.
        targets: tensor ``[*]`` with values in ``{0, 1}``.
        k: sharpness ``> 0``.
        margin: threshold ``m`` in ``[0.5, 1)``.
        reduction: ``"none"`` (shape ``[*]``), ``"sum"`` or ``"mean"`` over all elements.

    Returns:
        float32 tensor, scalar or shape ``[*]``.
    """
    k = _check_range("k", k, 0.0, lo_open=True)
    m = _check_range("margin", margin, 0.5, 1.0)
    _check_reduction(reduction)
    z = _binary_log_odds(logits, targets)
    loss = -torch.sigmoid(-k * (z - _logit(m))) * F.logsigmoid(z)
    return _reduce_dense(loss, reduction)


class _TokenLoss(nn.Module):
    """Stores ``alpha`` (a non-persistent buffer, so it follows ``.to()``) and ``reduction``."""

    alpha: Tensor | None

    def __init__(self, alpha: Tensor | None, reduction: str) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.register_buffer("alpha", None if alpha is None else _check_alpha(alpha), persistent=False)


class MarginLoss(_TokenLoss):
    """Module form of :func:`margin_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(self, *, margin: float = 0.6, alpha: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(alpha, reduction)
        self.margin = _check_range("margin", margin, 0.5, 1.0, lo_open=True)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return margin_loss(logits, labels, margin=self.margin, alpha=self.alpha, reduction=self.reduction)


class SoftMarginLoss(_TokenLoss):
    """Module form of :func:`soft_margin_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(
        self, *, margin: float = 0.6, k: float = 10.0, alpha: Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(alpha, reduction)
        self.margin = _check_range("margin", margin, 0.5, 1.0, lo_open=True)
        self.k = _check_range("k", k, 0.0, lo_open=True)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return soft_margin_loss(
            logits, labels, margin=self.margin, k=self.k, alpha=self.alpha, reduction=self.reduction
        )


class DiceLoss(_TokenLoss):
    """Module form of :func:`dice_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(
        self, *, power: float = 1.0, smooth: float = 1.0, alpha: Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(alpha, reduction)
        self.power = _check_range("power", power, 0.0)
        self.smooth = _check_range("smooth", smooth, 0.0)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return dice_loss(
            logits, labels, power=self.power, smooth=self.smooth, alpha=self.alpha, reduction=self.reduction
        )
