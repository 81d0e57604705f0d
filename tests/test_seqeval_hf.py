"""to_hf_seqeval gives what evaluate's seqeval metric computes from the same tags."""

from __future__ import annotations

import pytest

from nerfocal.metrics import entity_metrics
from nerfocal.seqeval_hf import to_hf_seqeval, token_accuracy

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "I-ORG", "O"],
    ["O", "B-MISC", "O", "B-PER"],
]
PRED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],
    ["B-ORG", "I-ORG", "O", "O"],
    ["O", "B-MISC", "O", "B-PER"],
]


def evaluate_seqeval(references: list[list[str]], predictions: list[list[str]]) -> dict:
    """evaluate's metrics/seqeval/seqeval.py ``_compute`` with its defaults (no evaluate install here)."""
    from seqeval.metrics import accuracy_score, classification_report

    report = classification_report(y_true=references, y_pred=predictions, output_dict=True, zero_division=0)
    report.pop("macro avg")
    report.pop("weighted avg")
    overall = report.pop("micro avg")
    scores = {
        name: {
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1-score"],
            "number": s["support"],
        }
        for name, s in report.items()
    }
    scores["overall_precision"] = overall["precision"]
    scores["overall_recall"] = overall["recall"]
    scores["overall_f1"] = overall["f1-score"]
    scores["overall_accuracy"] = accuracy_score(y_true=references, y_pred=predictions)
    return scores


def test_conversion_equals_evaluate_seqeval_on_the_same_tags() -> None:
    expected = evaluate_seqeval(GOLD, PRED)
    got = to_hf_seqeval(entity_metrics(GOLD, PRED))
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert got[key] == pytest.approx(value), key
            assert isinstance(got[key]["number"], int)
        else:
            assert got[key] == pytest.approx(value), key
    assert got["ORG"]["f1"] == 0.0 and got["LOC"]["number"] == 1  # the example is not trivial


def test_missing_accuracy_is_computed_from_the_tags_like_seqeval() -> None:
    from seqeval.metrics import accuracy_score

    metrics = entity_metrics(GOLD, PRED)
    del metrics["accuracy"]
    got = to_hf_seqeval(metrics, gold=GOLD, pred=PRED)
    assert got["overall_accuracy"] == pytest.approx(accuracy_score(GOLD, PRED))
    assert token_accuracy(GOLD, PRED) == pytest.approx(11 / 13)


def test_missing_accuracy_without_tags_is_a_clear_error() -> None:
    metrics = entity_metrics(GOLD, PRED)
    del metrics["accuracy"]
    with pytest.raises(ValueError, match="expected 'accuracy'"):
        to_hf_seqeval(metrics)


def test_a_dict_that_is_not_nerfocal_metrics_is_rejected() -> None:
    with pytest.raises(ValueError, match="'per_type'"):
        to_hf_seqeval({"precision": 1.0, "recall": 1.0, "f1": 1.0})


def test_token_accuracy_rejects_ragged_predictions() -> None:
    with pytest.raises(ValueError, match="sentence 0: expected 2"):
        token_accuracy([["O", "O"]], [["O"]])
