"""Issue 19 item 3: the temperature fit is skipped when the dev set cannot identify T, and bounded."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import nerfocal.evaluate as evaluate_module
from nerfocal.metrics import TEMPERATURE_BOUNDS, fit_temperature

RNG = np.random.default_rng(0)


def _all_right(n: int = 400, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    labels = RNG.integers(0, classes, size=n)
    logits = RNG.normal(size=(n, classes))
    logits[np.arange(n), labels] += 10.0  # every argmax right: the NLL falls without limit as T -> 0
    return logits, labels


def test_a_dev_set_the_model_gets_entirely_right_keeps_t_at_one() -> None:
    assert fit_temperature(*_all_right()) == 1.0  # before: T = 0.0x


def test_an_all_o_dev_set_keeps_t_at_one() -> None:
    logits = RNG.normal(size=(300, 5))
    labels = np.zeros(300, dtype=np.int64)  # all O, some predicted wrong
    assert fit_temperature(logits, labels) == 1.0


def test_the_fitted_temperature_stays_within_its_bounds() -> None:
    n = 400
    labels = np.arange(n) % 2
    logits = np.zeros((n, 3))
    logits[:, 0] = 40.0  # always class 0, very confident, half wrong: the best T is 40 / ln 2 = 58
    t = fit_temperature(logits, labels)
    assert TEMPERATURE_BOUNDS == (0.05, 20.0) and t == pytest.approx(20.0)


def test_evaluate_splits_skips_the_fit_with_a_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw = _all_right()
    monkeypatch.setattr(evaluate_module, "predict_logits", lambda trainer, features: raw)
    monkeypatch.setattr(evaluate_module, "score_logits", lambda *a, **k: ({"ece": 0.0, "nll": 0.0}, None))
    evals: dict[str, Any] = {"validation": SimpleNamespace(features=[], windows=[], sentences=[])}
    cfg = SimpleNamespace(strict_metrics=False, temperature_scaling=True, o_bias="0")
    with caplog.at_level(logging.INFO, logger="nerfocal"):
        metrics, _, temperature, _ = evaluate_module.evaluate_splits(None, evals, {}, cfg, cfg)
    assert temperature == 1.0 and metrics["validation"]["temperature"] == 1.0
    assert "temperature scaling: skipped" in caplog.text and "gets every token right" in caplog.text
