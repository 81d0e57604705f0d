"""Issue 19: the head of a run started from a trained model (kept, mapped by label name, prior init only on
new rows) and the one-line message that replaces transformers' LOAD REPORT. See docs/robustness.md."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from fixtures import build_tiny_model

from nerfocal.config import LossConfig, ModelConfig
from nerfocal.encode import DataStats
from nerfocal.training import PreparedData, build_model

LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _prepared(labels: list[str]) -> PreparedData:
    counts = [100] + [3] * (len(labels) - 1)
    return PreparedData(labels, "IOB2", [], DataStats(), counts)


def _trained(tmp_path: Path, labels: list[str]) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A 'trained' model: a saved token classifier whose head rows are distinct, known values."""
    from transformers import AutoModelForTokenClassification

    directory = build_tiny_model(tmp_path / "trained", labels=labels)
    model = AutoModelForTokenClassification.from_pretrained(directory)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.arange(len(labels), dtype=torch.float32) + 10.0)
        model.classifier.weight.normal_()
    model.save_pretrained(directory)
    return directory, model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved encoder without a head (BertModel), as on the hub, with its tokenizer."""
    from transformers import AutoModelForTokenClassification

    directory = build_tiny_model(tmp_path_factory.mktemp("encoder"))
    AutoModelForTokenClassification.from_pretrained(directory).bert.save_pretrained(directory)
    return directory


def _build(path: Path, labels: list[str]):  # type: ignore[no-untyped-def]
    return build_model(ModelConfig(model_name_or_path=str(path)), LossConfig(), _prepared(labels))


def test_prior_init_keeps_the_bias_of_a_trained_head_with_the_same_labels(tmp_path: Path) -> None:
    directory, weight, bias = _trained(tmp_path, LABELS)
    model = _build(directory, LABELS)  # focal loss: prior init is on
    assert torch.equal(model.classifier.bias.detach(), bias)
    assert torch.equal(model.classifier.weight.detach(), weight)


def test_prior_init_sets_the_bias_of_a_new_head(encoder_dir: Path) -> None:
    model = _build(encoder_dir, LABELS)
    prior = torch.tensor([100, 3, 3, 3, 3], dtype=torch.float64)
    assert torch.allclose(model.classifier.bias.detach().double(), (prior / prior.sum()).log(), atol=1e-6)


def test_a_same_size_label_set_in_another_order_maps_the_rows_by_label_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory, weight, bias = _trained(tmp_path, LABELS)
    new = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]  # same size: B-ORG moves from row 3 to row 1
    with caplog.at_level(logging.INFO, logger="nerfocal"):
        model = _build(directory, new)
    w, b = model.classifier.weight.detach(), model.classifier.bias.detach()
    assert model.config.id2label == dict(enumerate(new)) and w.shape == (5, weight.shape[1])
    for i, j in ((0, 0), (1, 3), (2, 4)):  # O, B-ORG, I-ORG keep their trained rows
        assert torch.equal(w[i], weight[j]) and b[i] == bias[j]
    for i in (3, 4):  # B-PER, I-PER are new: fresh rows, prior bias
        assert not any(torch.equal(w[i], weight[j]) for j in range(5))
        assert b[i] == pytest.approx(float(torch.tensor(3 / 112).log()), abs=1e-5)
    assert "new rows for ['B-PER', 'I-PER']" in caplog.text and "['B-LOC', 'I-LOC']" in caplog.text


def test_a_larger_label_set_keeps_the_rows_of_the_shared_labels(tmp_path: Path) -> None:
    directory, weight, bias = _trained(tmp_path, LABELS)
    new = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    model = _build(directory, new)
    w = model.classifier.weight.detach()
    assert w.shape[0] == 7 and torch.equal(w[:5], weight)
    assert torch.equal(model.classifier.bias[:5].detach(), bias)
    assert model.num_labels == 7 and model(input_ids=torch.tensor([[2, 5, 3]])).logits.shape == (1, 3, 7)


def test_a_new_head_is_one_log_line_instead_of_the_load_report(
    encoder_dir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        _build(encoder_dir, LABELS)
    out = caplog.text + "".join(capsys.readouterr())
    assert "LOAD REPORT" not in out and "MISMATCH" not in out
    assert "the classification head (classifier, 5 labels) is new, as expected" in caplog.text
