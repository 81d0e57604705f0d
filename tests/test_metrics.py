"""Entity scores, calibration error and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures import sample_features, tiny_model

from nerfocal.metrics import (
    calibration_metrics,
    entity_metrics,
    expected_calibration_error,
    fit_temperature,
)


def test_ece_on_a_hand_built_example() -> None:
    # 15 bins of width 1/15. Confidences 0.95 (bin 15) x2, one right; 0.55 (bin 9) x2, both right;
    # 0.30 (bin 5) x1, wrong. ECE = 2/5*|0.5-0.95| + 2/5*|1-0.55| + 1/5*|0-0.30| = 0.18 + 0.18 + 0.06
    confidence = np.array([0.95, 0.95, 0.55, 0.55, 0.30])
    correct = np.array([1, 0, 1, 1, 0])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.42, abs=1e-12)


def test_ece_uses_max_probability_and_skips_ignored_positions() -> None:
    # two tokens: p = (0.8, 0.2) gold 0 (right, conf 0.8); p = (0.6, 0.4) gold 1 (wrong, conf 0.6)
    logits = np.log(np.array([[[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]]]))
    labels = np.array([[0, 1, -100]])
    metrics = calibration_metrics(logits, labels)
    # bins: 0.8 -> bin 12, 0.6 -> bin 9; ECE = 1/2*|1-0.8| + 1/2*|0-0.6| = 0.4
    assert metrics["ece"] == pytest.approx(0.4)
    assert metrics["nll"] == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)
    assert metrics["tokens"] == 2


def test_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 5)) * 2.0
    labels = np.array([rng.choice(5, p=np.exp(z) / np.exp(z).sum()) for z in true_logits])
    # an over-confident model: logits 3x too large; the fitted T should be close to 3
    t = fit_temperature(true_logits * 3.0, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert (
        calibration_metrics(true_logits * 3.0, labels, temperature=t)["nll"]
        < calibration_metrics(true_logits * 3.0, labels)["nll"]
    )


def test_fitted_temperature_does_not_raise_dev_nll_of_a_tiny_model() -> None:
    from transformers import DataCollatorForTokenClassification

    features, tokenizer = sample_features(32)
    model = tiny_model(seed=3).eval()
    batch = dict(DataCollatorForTokenClassification(tokenizer)(features))
    labels = batch.pop("labels").numpy()
    with torch.no_grad():
        logits = (model(**batch).logits * 4.0).numpy()  # a random head, made over-confident
    t = fit_temperature(logits, labels)
    before = calibration_metrics(logits, labels)["nll"]
    after = calibration_metrics(logits, labels, temperature=t)["nll"]
    assert after <= before + 1e-9
    assert t != 1.0


def test_entity_metrics_micro_macro_and_per_type() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    m = entity_metrics(gold, pred)
    # PER right, ORG right, LOC missed, one spurious LOC: P = 2/3, R = 2/3
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["per_type"]["LOC"]["f1"] == 0.0 and m["per_type"]["PER"]["f1"] == 1.0
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)


def test_strict_mode_counts_invalid_chunks_as_errors() -> None:
    gold = [["B-PER", "I-PER"]]
    pred = [["I-PER", "I-PER"]]  # conlleval reads it as a PER chunk; strict IOB2 does not
    assert entity_metrics(gold, pred)["f1"] == 1.0
    assert entity_metrics(gold, pred, strict=True)["f1"] == 0.0


def test_no_entities_anywhere_scores_zero_without_warnings(recwarn: pytest.WarningsRecorder) -> None:
    m = entity_metrics([["O", "O"]], [["O", "O"]])
    assert m["f1"] == 0.0 and m["accuracy"] == 1.0
    assert not [w for w in recwarn if "empty slice" in str(w.message)]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="sentence 0: expected 2 predicted tags"):
        entity_metrics([["O", "O"]], [["O"]])
