"""The margin family: hard-truncated cross-entropy (``margin``), its sigmoid relaxation (``soft_margin``)
and their binary forms. Formulas and references in ``docs/losses.md``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfocal.losses._core import (
    _check_range,
    _check_reduction,
    _focal_factor,
    _logit,
    _prepare,
    _reduce,
    _TokenLoss,
    _true_log_prob,
)


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
