"""Self-adjusting dice loss (Li et al., 2020). Formula in ``docs/losses.md``."""

from __future__ import annotations

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
