"""Token-classification losses for NER: cross-entropy, focal loss and relatives, with one dispatcher.

Each loss is a function ``loss(logits, labels, *, <params>, alpha=None, reduction="mean")`` and a thin
``nn.Module`` that stores the parameters and delegates. :func:`compute_loss` picks one by name from
``LOSS_NAMES``. Conventions shared by every loss (details and references in ``docs/losses.md``):

    * ``logits``: float tensor ``[B, S, C]`` or ``[N, C]``; ``labels``: integer tensor ``[B, S]`` /
      ``[N]`` with ``IGNORE_INDEX`` (-100) where excluded; other labels outside ``[0, C)`` raise.
    * The math runs in float32 from ``log_softmax`` whatever the logits' dtype (bf16/fp16 upcast;
      float64 stays float64) and the result is float32.
    * ``alpha``: optional float tensor ``[C]`` (see :func:`resolve_alpha`): each token's term is
      multiplied by ``alpha[label]``; alpha does not enter the denominator of ``"mean"``.
    * ``reduction="none"``: the per-position loss, shape of ``labels``, 0 at ignored positions;
      ``"sum"``: sum over valid positions (exact; the trainer divides by a global token count);
      ``"mean"``: that sum / number of valid positions. No valid position gives 0 with a gradient.

The margin, soft-margin and dice losses live in :mod:`nerfocal.losses_extra` and are re-exported here.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

import torch
from torch import Tensor

from nerfocal.losses_extra import (
    IGNORE_INDEX,
    REDUCTIONS,
    DiceLoss,
    MarginLoss,
    SoftMarginLoss,
    _check_alpha,
    _check_range,
    _check_reduction,
    _focal_factor,
    _prepare,
    _reduce,
    _TokenLoss,
    _true_log_prob,
    binary_focal_loss,
    binary_soft_margin_loss,
    dice_loss,
    margin_loss,
    soft_margin_loss,
)

__all__ = [
    "IGNORE_INDEX",
    "LOSS_NAMES",
    "LOSS_PARAMS",
    "REDUCTIONS",
    "AdaptiveFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "MarginLoss",
    "SoftMarginLoss",
    "adaptive_focal_loss",
    "binary_focal_loss",
    "binary_soft_margin_loss",
    "compute_loss",
    "cross_entropy_loss",
    "dice_loss",
    "focal_loss",
    "margin_loss",
    "resolve_alpha",
    "soft_margin_loss",
]

LOSS_NAMES = ("ce", "focal", "focal_adaptive", "margin", "soft_margin", "dice")
# keyword parameters each loss accepts besides `reduction` (for config validation)
LOSS_PARAMS: dict[str, tuple[str, ...]] = {
    "ce": ("alpha",),
    "focal": ("gamma", "alpha"),
    "focal_adaptive": ("gammas", "thresholds", "alpha"),
    "margin": ("margin", "alpha"),
    "soft_margin": ("margin", "k", "alpha"),
    "dice": ("power", "smooth", "alpha"),
}


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


AlphaSpec: TypeAlias = float | str | Sequence[float] | Mapping[str, float] | Tensor | None


def _auto_o_weight(labels: list[str], label_counts: Sequence[int] | None, o_index: int) -> float:
    if label_counts is None:
        raise ValueError("expected label_counts (training label frequencies) with alpha='auto', got None")
    counts = [_check_range("each label count", c, 0.0) for c in label_counts]
    if len(counts) != len(labels):
        raise ValueError(f"expected {len(labels)} label counts, one per label {labels}, got {len(counts)}")
    if sum(counts) <= 0:
        raise ValueError(f"expected label counts with a positive total, got {list(label_counts)}")
    pi_o = counts[o_index] / sum(counts)
    return math.sqrt(pi_o) / (math.sqrt(pi_o) + math.sqrt(1.0 - pi_o))


def resolve_alpha(
    alpha: AlphaSpec,
    label_list: Sequence[str],
    label_counts: Sequence[int] | None = None,
    o_label: str = "O",
) -> Tensor | None:
    """Turn a user-facing alpha into the float32 ``[C]`` tensor the losses take, or None.

    Forms:
        * ``None``: no weighting.
        * list / tuple / tensor: one weight per label, in ``label_list`` order.
        * dict ``{label: weight}``: labels not named get 1.0; an unknown label raises.
        * scalar in ``[0, 1]``: the ``o_label`` class gets ``alpha``, every other class ``1 - alpha``.
          This is the *opposite* of torchvision ``sigmoid_focal_loss`` and kornia
          ``binary_focal_loss_with_logits``, where alpha weights the rare positive/foreground class
          (0.25 in Lin et al.). In NER the frequent class is O, and once ``(1 - p_t) ** gamma`` has
          down-weighted the many easy O tokens, O becomes the class that needs the larger weight;
          e.g. 0.75 gives O 0.75 and entity labels 0.25.
        * ``"auto"``: the scalar form with ``alpha_O = sqrt(pi_O) / (sqrt(pi_O) + sqrt(1 - pi_O))``,
          ``pi_O`` the share of O in ``label_counts``. So ``alpha_O / alpha_entity`` is the square root
          of the O : entity frequency ratio: 0.5 / 0.5 for balanced data, large O weight when O
          dominates (CoNLL-2003, pi_O ~ 0.83 -> ~0.69, near the 0.75 above), all entity labels share
          one finite weight, so a label absent from training (count 0) gets ``1 - alpha_O`` too.
          Entity types are not weighted by their own frequency, which would down-weight rare types.

    Args:
        alpha: one of the forms above.
        label_list: the label names, index ``i`` is class ``i`` (``id2label`` order).
        label_counts: count of each label over the training positions that enter the loss; needed by
            ``"auto"`` only.
        o_label: the name of the outside class for the scalar and ``"auto"`` forms.

    Returns:
        float32 tensor ``[C]`` with ``C = len(label_list)``, or None.

    Raises:
        ValueError: on a wrong length, unknown dict label, scalar outside ``[0, 1]``, ``"auto"`` without
            counts, ``o_label`` missing from ``label_list``, negative or non-finite weights, other types.
    """
    labels = list(label_list)
    if alpha is None:
        return None
    if isinstance(alpha, str) or (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)):
        if isinstance(alpha, str) and alpha != "auto":
            raise ValueError(
                f"expected alpha 'auto', a float in [0, 1], a list, a dict or None, got {alpha!r}"
            )
        if o_label not in labels:
            raise ValueError(f"expected o_label {o_label!r} among the labels {labels}")
        o_index = labels.index(o_label)
        if isinstance(alpha, str):
            a = _auto_o_weight(labels, label_counts, o_index)
        else:
            a = _check_range("scalar alpha", alpha, 0.0, 1.0, hi_open=False)
        weights = [1.0 - a] * len(labels)
        weights[o_index] = a
    elif isinstance(alpha, Mapping):
        unknown = [name for name in alpha if name not in labels]
        if unknown:
            raise ValueError(f"expected alpha keys among the labels {labels}, got unknown {unknown}")
        weights = [_check_range(f"alpha[{name!r}]", alpha.get(name, 1.0), 0.0) for name in labels]
    elif isinstance(alpha, (Sequence, Tensor)) and not isinstance(alpha, bytes):
        if len(alpha) != len(labels):
            raise ValueError(
                f"expected {len(labels)} alpha weights, one per label {labels}, got {len(alpha)}"
            )
        weights = [_check_range("each alpha weight", w, 0.0) for w in alpha]
    else:
        raise ValueError(f"expected alpha 'auto', a float in [0, 1], a list, a dict or None, got {alpha!r}")
    return _check_alpha(torch.tensor(weights, dtype=torch.float32), len(labels))


_LOSSES: dict[str, Callable[..., Tensor]] = {
    "ce": cross_entropy_loss,
    "focal": focal_loss,
    "focal_adaptive": adaptive_focal_loss,
    "margin": margin_loss,
    "soft_margin": soft_margin_loss,
    "dice": dice_loss,
}


def compute_loss(
    name: str, logits: Tensor, labels: Tensor, *, reduction: str = "mean", **params: object
) -> Tensor:
    """Compute the loss called ``name`` (one of ``LOSS_NAMES``) with its keyword ``params``.

    Args:
        name: loss name, e.g. ``"focal"``.
        logits: float tensor ``[B, S, C]`` or ``[N, C]``.
        labels: integer tensor ``[B, S]`` or ``[N]``, ``IGNORE_INDEX`` where excluded.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
        **params: the loss's parameters, names from ``LOSS_PARAMS[name]`` (``alpha`` already resolved).

    Returns:
        float32 tensor, scalar or the labels' shape.

    Raises:
        ValueError: on an unknown name, a parameter the loss does not take, or a bad value.
    """
    if name not in _LOSSES:
        raise ValueError(f"expected loss name in {LOSS_NAMES}, got {name!r}")
    unknown = sorted(set(params) - set(LOSS_PARAMS[name]))
    if unknown:
        raise ValueError(f"expected parameters of {name!r} among {list(LOSS_PARAMS[name])}, got {unknown}")
    return _LOSSES[name](logits, labels, reduction=reduction, **params)


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
