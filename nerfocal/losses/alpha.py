"""Per-class weights (alpha) of the losses: every user-facing form turned into one float32 ``[C]`` tensor."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import torch
from torch import Tensor

from nerfocal.losses._core import _check_alpha, _check_range

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


def parse_alpha(value: Any) -> Any:
    """Turn a CLI/YAML alpha into None, a float, 'auto', a list of floats or a dict of floats."""
    if value is None or (isinstance(value, (float, int)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        if text.lower() == "auto":
            return "auto"
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f"alpha: expected none, a number, 'auto', a JSON list or a JSON object, got {text!r}"
            ) from None
        return parse_alpha(value)
    if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    if isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
    ):
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"alpha: expected none, a number, 'auto', a list or a mapping of numbers, got {value!r}")
