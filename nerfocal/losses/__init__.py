"""Token-classification losses for NER: cross-entropy, focal loss and relatives, and their one registry.

Each loss is a function ``loss(logits, labels, *, <params>, alpha=None, reduction="mean")`` and a thin
``nn.Module`` that stores the parameters and delegates. Conventions shared by every loss (details and
references in ``docs/losses.md``):

    * ``logits``: float tensor ``[B, S, C]`` or ``[N, C]``; ``labels``: integer tensor ``[B, S]`` /
      ``[N]`` with ``IGNORE_INDEX`` (-100) where excluded; other labels outside ``[0, C)`` raise.
    * The math runs in float32 from ``log_softmax`` whatever the logits' dtype (bf16/fp16 upcast;
      float64 stays float64) and the result is float32.
    * ``alpha``: optional float tensor ``[C]`` (see :func:`resolve_alpha`): each token's term is
      multiplied by ``alpha[label]``; alpha does not enter the denominator of ``"mean"``.
    * ``reduction="none"``: the per-position loss, shape of ``labels``, 0 at ignored positions;
      ``"sum"``: sum over valid positions (exact; the trainer divides by a global token count);
      ``"mean"``: that sum / number of valid positions. No valid position gives 0 with a gradient.

Layout: :mod:`._core` (checks, reductions, the focal factor) at the bottom; one module per family
(:mod:`.focal`, :mod:`.margin`, :mod:`.dice`) and :mod:`.alpha`; this module holds :data:`LOSSES`, the
registry from which config validation, the trainer's keyword map and ``--help`` are derived. Adding a
loss is one :class:`LossSpec` entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from nerfocal.losses._core import IGNORE_INDEX, REDUCTIONS
from nerfocal.losses.alpha import ALPHA_NORMALIZATIONS, normalize_alpha, resolve_alpha
from nerfocal.losses.dice import DiceLoss, dice_loss
from nerfocal.losses.focal import (
    AdaptiveFocalLoss,
    CrossEntropyLoss,
    FocalLoss,
    adaptive_focal_loss,
    cross_entropy_loss,
    focal_loss,
)
from nerfocal.losses.margin import (
    MarginLoss,
    SoftMarginLoss,
    binary_focal_loss,
    binary_soft_margin_loss,
    margin_loss,
    soft_margin_loss,
)

__all__ = [
    "ALPHA_NORMALIZATIONS",
    "FOCAL_FAMILY",
    "IGNORE_INDEX",
    "LOSSES",
    "LOSS_NAMES",
    "LOSS_PARAMS",
    "REDUCTIONS",
    "AdaptiveFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "LossSpec",
    "MarginLoss",
    "SoftMarginLoss",
    "adaptive_focal_loss",
    "binary_focal_loss",
    "binary_soft_margin_loss",
    "compute_loss",
    "cross_entropy_loss",
    "dice_loss",
    "focal_loss",
    "loss_params",
    "margin_loss",
    "normalize_alpha",
    "resolve_alpha",
    "resolve_prior_init",
    "soft_margin_loss",
]


@dataclass(frozen=True)
class LossSpec:
    """One loss of the registry.

    Attributes:
        function: ``function(logits, labels, *, alpha, reduction, **params) -> Tensor``.
        options: keyword of ``function`` -> the :class:`~nerfocal.config.LossConfig` field that sets it.
        ramped: keywords scaled by the gamma ramp after a cross-entropy warm-up (``gamma_ramp_steps``).
        focal_family: prior bias init is on by default for these losses.
        summary: one line for ``--help`` and the docs.
    """

    function: Callable[..., Tensor]
    options: dict[str, str] = field(default_factory=dict)
    ramped: tuple[str, ...] = ()
    focal_family: bool = False
    summary: str = ""


LOSSES: dict[str, LossSpec] = {
    "ce": LossSpec(cross_entropy_loss, summary="cross-entropy -alpha_t log p_t"),
    "focal": LossSpec(
        focal_loss,
        {"gamma": "gamma"},
        ramped=("gamma",),
        focal_family=True,
        summary="focal loss -alpha_t (1 - p_t)^gamma log p_t",
    ),
    "focal_adaptive": LossSpec(
        adaptive_focal_loss,
        {"gammas": "adaptive_gammas", "thresholds": "adaptive_thresholds"},
        ramped=("gammas",),
        focal_family=True,
        summary="FLSD-53: gamma from p_t bins",
    ),
    "margin": LossSpec(margin_loss, {"margin": "margin"}, summary="hard-truncated CE (no update past m)"),
    "soft_margin": LossSpec(
        soft_margin_loss, {"margin": "margin", "k": "margin_k"}, summary="sigmoid(K x) relaxation of margin"
    ),
    "dice": LossSpec(
        dice_loss, {"power": "dice_power", "smooth": "dice_smooth"}, summary="self-adjusting dice loss"
    ),
}
LOSS_NAMES = tuple(LOSSES)
FOCAL_FAMILY = tuple(name for name, spec in LOSSES.items() if spec.focal_family)


def resolve_prior_init(prior_init: bool | None, loss: str | None) -> bool:
    """``prior_init`` as training applies it: unset (``None``) is on for the focal losses, off otherwise."""
    return prior_init if prior_init is not None else loss in FOCAL_FAMILY


# keyword parameters each loss accepts besides `reduction`
LOSS_PARAMS: dict[str, tuple[str, ...]] = {name: (*spec.options, "alpha") for name, spec in LOSSES.items()}


def loss_params(
    name: str, config: object, alpha: Tensor | None = None, ramp: float = 1.0
) -> dict[str, object]:
    """Keyword parameters of loss ``name`` from a ``LossConfig``; ramped keywords scaled by ``ramp``."""
    spec = LOSSES[name]
    params: dict[str, object] = {"alpha": alpha}
    for keyword, option in spec.options.items():
        value = getattr(config, option)
        if keyword in spec.ramped:
            value = tuple(v * ramp for v in value) if isinstance(value, (list, tuple)) else value * ramp
        elif isinstance(value, list):
            value = tuple(value)
        params[keyword] = value
    return params


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
    if name not in LOSSES:
        raise ValueError(f"expected loss name in {LOSS_NAMES}, got {name!r}")
    unknown = sorted(set(params) - set(LOSS_PARAMS[name]))
    if unknown:
        raise ValueError(f"expected parameters of {name!r} among {list(LOSS_PARAMS[name])}, got {unknown}")
    return LOSSES[name].function(logits, labels, reduction=reduction, **params)
