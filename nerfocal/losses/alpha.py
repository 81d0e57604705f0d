"""Per-class weights (alpha) of the losses: every user-facing form turned into one float32 ``[C]`` tensor."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import torch
from torch import Tensor

from nerfocal.losses._core import _check_alpha, _check_range

AlphaSpec: TypeAlias = float | str | Sequence[float] | Mapping[str, float] | Tensor | None
# how the resolved vector is rescaled: "none" keeps it, "prior" makes its mean over training tokens 1
ALPHA_NORMALIZATIONS = ("none", "prior")


def _label_prior(labels: list[str], label_counts: Sequence[int] | None, why: str) -> list[float]:
    """The training frequency ``pi_c`` of each label from its count; ``why`` names what needs it."""
    if label_counts is None:
        raise ValueError(f"expected label_counts (training label frequencies) with {why}, got None")
    counts = [_check_range("each label count", c, 0.0) for c in label_counts]
    if len(counts) != len(labels):
        raise ValueError(f"expected {len(labels)} label counts, one per label {labels}, got {len(counts)}")
    if sum(counts) <= 0:
        raise ValueError(f"expected label counts with a positive total, got {list(label_counts)}")
    return [c / sum(counts) for c in counts]


def _auto_o_weight(labels: list[str], label_counts: Sequence[int] | None, o_index: int) -> float:
    pi_o = _label_prior(labels, label_counts, "alpha='auto'")[o_index]
    return math.sqrt(pi_o) / (math.sqrt(pi_o) + math.sqrt(1.0 - pi_o))


def normalize_alpha(alpha: Tensor, label_list: Sequence[str], label_counts: Sequence[int] | None) -> Tensor:
    """Rescale ``alpha`` so that the mean weight of a training token is 1: ``sum_c pi_c alpha_c = 1``.

    ``pi_c`` is the share of label ``c`` in ``label_counts``. The ratios between the classes stay the same;
    what changes is the mean per-token weight ``sum_c pi_c alpha_c``, which for an O-heavy alpha is below 1
    (0.73 for ``alpha=0.75`` on WNUT-17) and so also scales the step size down (docs/losses.md).

    Args:
        alpha: float tensor ``[C]`` (from :func:`resolve_alpha`).
        label_list: the label names, index ``i`` is class ``i``.
        label_counts: count of each label over the training positions that enter the loss.

    Returns:
        float32 tensor ``[C]``: ``alpha / sum_c pi_c alpha_c``.

    Raises:
        ValueError: without counts, with counts of the wrong length or zero total, or when alpha is 0 on
            every label that occurs in training (nothing to rescale).
    """
    prior = torch.tensor(
        _label_prior(list(label_list), label_counts, "alpha_normalization 'prior'"), dtype=torch.float64
    )
    mean_weight = float((prior * alpha.to(torch.float64)).sum())
    if not mean_weight > 0:
        raise ValueError(
            f"alpha_normalization 'prior': expected alpha > 0 on some label seen in training, got "
            f"{alpha.tolist()} for counts {list(label_counts or [])}"
        )
    return (alpha.to(torch.float64) / mean_weight).to(torch.float32)


def resolve_alpha(
    alpha: AlphaSpec,
    label_list: Sequence[str],
    label_counts: Sequence[int] | None = None,
    o_label: str = "O",
    normalization: str = "none",
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
            ``"auto"`` and ``normalization="prior"`` only.
        o_label: the name of the outside class for the scalar and ``"auto"`` forms.
        normalization: ``"none"`` (the weights as given) or ``"prior"``: any form rescaled by
            :func:`normalize_alpha` so that ``sum_c pi_c alpha_c = 1`` (needs an alpha, not None).

    Returns:
        float32 tensor ``[C]`` with ``C = len(label_list)``, or None.

    Raises:
        ValueError: on a wrong length, unknown dict label, scalar outside ``[0, 1]``, ``"auto"`` without
            counts, ``o_label`` missing from ``label_list``, negative or non-finite weights, other types;
            an unknown ``normalization``, or ``"prior"`` with alpha None or without counts.
    """
    labels = list(label_list)
    if normalization not in ALPHA_NORMALIZATIONS:
        raise ValueError(
            f"alpha_normalization: expected one of {', '.join(ALPHA_NORMALIZATIONS)}, got {normalization!r}"
        )
    if alpha is None:
        if normalization != "none":
            raise ValueError(f"alpha_normalization {normalization!r}: expected an alpha to rescale, got none")
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
    resolved = _check_alpha(torch.tensor(weights, dtype=torch.float32), len(labels))
    return normalize_alpha(resolved, labels, label_counts) if normalization == "prior" else resolved
