"""Cross-entropy, focal loss (Lin et al., 2017) and the adaptive focal loss FLSD-53 (Mukhoti et al., 2020).

Formulas in ``docs/losses.md``; conventions in :mod:`nerfocal.losses._core`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from nerfocal.losses._core import (
    _check_range,
    _check_reduction,
    _focal_factor,
    _prepare,
    _reduce,
    _TokenLoss,
    _true_log_prob,
)


def cross_entropy_loss(
    logits: Tensor, labels: Tensor, *, alpha: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy ``-alpha_t * log p_t``; without alpha, equal to ``F.cross_entropy(ignore_index=-100)``.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        alpha: optional float tensor ``[C]``, per-token weight ``alpha[label]``. Unlike
            ``F.cross_entropy(weight=...)``, the mean still divides by the number of valid positions.
        reduction: ``"none"`` (``[B, S]`` / ``[N]``, 0 where ignored), ``"sum"`` or ``"mean"``.

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on an unknown reduction, bad shapes or dtypes, labels outside ``[0, C)``, bad alpha.
    """
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    return _reduce(-_true_log_prob(batch), batch, reduction)


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss ``FL = -alpha_t * (1 - p_t) ** gamma * log p_t`` (Lin et al., 2017).

    ``log p_t`` comes from ``log_softmax`` in float32. ``1 - p_t`` is ``-expm1(log p_t)``, clamped to
    the smallest positive float so that the gradient stays finite at ``p_t = 1`` when ``gamma < 1``.
    ``gamma = 0`` skips the factor and is cross-entropy exactly, in values and gradients.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        gamma: focusing parameter, any float ``>= 0``.
        alpha: optional float tensor ``[C]`` from :func:`resolve_alpha`; each token's term is multiplied
            by ``alpha[label]`` and the mean still divides by the number of valid positions.
        reduction: ``"none"`` (``[B, S]`` / ``[N]``, 0 where ignored), ``"sum"`` or ``"mean"``.

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on ``gamma < 0``, an unknown reduction, bad shapes, labels outside ``[0, C)``, bad alpha.
    """
    gamma = _check_range("gamma", gamma, 0.0)
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    log_pt = _true_log_prob(batch)  # [M]
    loss = -log_pt if gamma == 0 else -_focal_factor(log_pt, gamma) * log_pt
    return _reduce(loss, batch, reduction)


def _check_schedule(gammas: Sequence[float], thresholds: Sequence[float]) -> tuple[list[float], list[float]]:
    if isinstance(gammas, (str, bytes)) or not isinstance(gammas, Sequence):
        raise ValueError(f"expected gammas as a sequence of floats, got {gammas!r}")
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence):
        raise ValueError(f"expected thresholds as a sequence of floats, got {thresholds!r}")
    gs = [_check_range("each gamma in gammas", g, 0.0) for g in gammas]
    ts = [_check_range("each threshold", t, 0.0, 1.0, lo_open=True) for t in thresholds]
    if len(gs) != len(ts) + 1:
        raise ValueError(f"expected len(gammas) == len(thresholds) + 1, got {len(gs)} and {len(ts)}")
    if any(a >= b for a, b in itertools.pairwise(ts)):
        raise ValueError(f"expected strictly increasing thresholds, got {list(thresholds)}")
    return gs, ts


def adaptive_focal_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    gammas: Sequence[float] = (5.0, 3.0),
    thresholds: Sequence[float] = (0.2,),
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Focal loss with a sample-dependent gamma (FLSD, Mukhoti et al., 2020).

    Token ``i`` uses ``gammas[j]`` where ``thresholds[j-1] <= p_t < thresholds[j]`` (``torch.bucketize``
    with ``right=True``); the default is FLSD-53: ``gamma = 5`` for ``p_t < 0.2``, else ``3``. The bucket
    is chosen from the detached ``p_t``; the loss is then ``focal_loss`` with that gamma per token.

    Args:
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        gammas: ``len(thresholds) + 1`` values ``>= 0``, from the lowest ``p_t`` bucket up.
        thresholds: strictly increasing values in ``(0, 1)``.
        alpha: optional float tensor ``[C]``, token weight ``alpha[label]``, not in the mean's denominator.
        reduction: ``"none"`` (``[B, S]`` / ``[N]``, 0 where ignored), ``"sum"`` or ``"mean"``.

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on a bad schedule, an unknown reduction, bad shapes, labels outside ``[0, C)``, bad alpha.
    """
    gs, ts = _check_schedule(gammas, thresholds)
    _check_reduction(reduction)
    batch = _prepare(logits, labels, alpha)
    log_pt = _true_log_prob(batch)  # [M]
    bounds = torch.tensor(ts, dtype=log_pt.dtype, device=log_pt.device)  # [J - 1]
    bucket = torch.bucketize(log_pt.detach().exp(), bounds, right=True)  # [M], in [0, J)
    gamma = torch.tensor(gs, dtype=log_pt.dtype, device=log_pt.device)[bucket]  # [M]
    return _reduce(-_focal_factor(log_pt, gamma) * log_pt, batch, reduction)


class CrossEntropyLoss(_TokenLoss):
    """Module form of :func:`cross_entropy_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(self, *, alpha: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(alpha, reduction)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return cross_entropy_loss(logits, labels, alpha=self.alpha, reduction=self.reduction)


class FocalLoss(_TokenLoss):
    """Module form of :func:`focal_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(self, *, gamma: float = 2.0, alpha: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(alpha, reduction)
        self.gamma = _check_range("gamma", gamma, 0.0)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return focal_loss(logits, labels, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction)


class AdaptiveFocalLoss(_TokenLoss):
    """Module form of :func:`adaptive_focal_loss`; ``forward(logits [B, S, C], labels [B, S])``."""

    def __init__(
        self,
        *,
        gammas: Sequence[float] = (5.0, 3.0),
        thresholds: Sequence[float] = (0.2,),
        alpha: Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(alpha, reduction)
        gs, ts = _check_schedule(gammas, thresholds)
        self.gammas, self.thresholds = tuple(gs), tuple(ts)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return adaptive_focal_loss(
            logits,
            labels,
            gammas=self.gammas,
            thresholds=self.thresholds,
            alpha=self.alpha,
            reduction=self.reduction,
        )
