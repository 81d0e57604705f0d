"""The decision bias on ``O``: a margin taken off the ``O`` class's score before decoding.

A model trained on data where ``O`` swamps the entities often stays conservative: high precision, low
recall (WNUT-17: 62 against 36). Subtracting ``b`` from the log-probability of ``O`` (after the
temperature) tags a word as an entity once that entity's probability is within ``e^b`` of ``O``'s.
``b`` is one number, chosen on the dev set by entity F1 after training (``o_bias auto``), saved as
``nerfocal_o_bias`` in ``config.json`` and used by every reader of the model: the training run's test
scores, ``nerfocal predict``/``evaluate``/``serve`` and the ONNX backend. Only the decision moves: the
scores reported with each entity stay the model's calibrated probabilities. This is the one-class form
of post-hoc logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# the biases `o_bias auto` tries; negative ones trade recall for precision
O_BIAS_GRID = tuple(round(-1.0 + 0.25 * k, 2) for k in range(17))  # -1.0 .. 3.0


def parse_o_bias(value: Any) -> str:
    """The ``o_bias`` option as stored: ``"auto"`` or a finite number's text.

    Raises:
        ValueError: naming the option and the accepted values.
    """
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    if text == "auto":
        return text
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"o_bias: expected 'auto' or a number (0 = no bias), got {value!r}")
    return repr(number)


def shifted(log_probs: np.ndarray, outside: int, bias: float) -> np.ndarray:
    """``log_probs`` ``[..., C]`` with ``bias`` taken off class ``outside`` (a copy; the input is kept)."""
    out = np.array(log_probs, dtype=np.float32, copy=True)
    out[..., outside] -= bias
    return out


def fit_o_bias(
    score: Callable[[float], float], grid: Sequence[float] = O_BIAS_GRID
) -> tuple[float, dict[float, float]]:
    """The bias of ``grid`` with the best ``score(bias)`` (dev entity F1).

    Ties go to the smallest ``|bias|``, then to the positive one.

    Returns:
        ``(bias, {bias: score})``.
    """
    scores = {float(b): float(score(float(b))) for b in grid}
    best = max(scores, key=lambda b: (round(scores[b], 10), -abs(b), b))
    return best, scores
