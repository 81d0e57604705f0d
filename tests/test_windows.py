"""One windowing scheme: the training run's evaluation reads each word from the window predict uses."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from fixtures import IOB2_LABELS, save_tiny_model
from transformers import AutoModelForTokenClassification, AutoTokenizer

from nerfocal.conll import Sentence
from nerfocal.encode import encode_eval_windows, encode_sentences, word_predictions
from nerfocal.labels import IGNORE_INDEX
from nerfocal.predict import Document, Predictor

VOCAB = ["Angela", "Merkel", "visited", "Paris", ",", "the", "European", "Union", "São", "Paulo", "met", "."]


def _sentences(lengths: list[int], seed: int = 0) -> list[Sentence]:
    rng = random.Random(seed)
    return [Sentence([rng.choice(VOCAB) for _ in range(n)], ["O"] * n) for n in lengths]


def _logits(model: torch.nn.Module, features: list[dict]) -> np.ndarray:
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features])
    mask = (torch.arange(width) < torch.tensor([len(f["input_ids"]) for f in features])[:, None]).long()
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).logits.numpy()  # [N, S, C]


def test_training_evaluation_and_predict_give_the_same_tags_on_sentences_longer_than_max_length(
    tmp_path: Path,
) -> None:
    directory = save_tiny_model(tmp_path / "m", IOB2_LABELS, max_length=16, entity_bias=0.5)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    sentences = _sentences([3, 40, 9, 75, 14, 1, 33])
    label2id = model.config.label2id
    features, windows, stats = encode_eval_windows(sentences, tokenizer, label2id, max_length=16)
    assert stats.split_sentences >= 3 and len(features) > len(sentences)  # the long ones are windowed
    tags = word_predictions(windows, _logits(model, features).argmax(-1), sentences, model.config.id2label)
    predictor = Predictor(model, tokenizer, device="cpu", decode="argmax", max_length=16)
    predicted = [p.tags for p in predictor.predict_documents(Document(list(s.tokens)) for s in sentences)]
    assert tags == predicted
    assert any(t != "O" for sentence in tags for t in sentence)  # a test that can fail: entities exist
    # every word is labelled (so counted by the loss and the calibration) exactly once
    labelled = sum(sum(1 for y in f["labels"] if y != IGNORE_INDEX) for f in features)
    assert labelled == sum(len(s.tokens) for s in sentences)
    # the training windows (whole words, no overlap) read long sentences with less context: other tags
    old, old_windows, _ = encode_sentences(sentences, tokenizer, label2id, max_length=16)
    old_tags = word_predictions(old_windows, _logits(model, old).argmax(-1), sentences, model.config.id2label)
    assert old_tags != predicted


def test_an_empty_sentence_in_the_evaluation_data_reads_nothing_and_breaks_nothing() -> None:
    """A JSONL record with no tokens (last, or alone) used to index past the flat word list."""
    from fixtures import LABELS, build_tokenizer

    label2id = {label: i for i, label in enumerate(LABELS)}
    tokenizer = build_tokenizer()
    for sentences in (
        [Sentence(["Paris", "visited"], ["B-LOC", "O"]), Sentence([], [])],
        [Sentence([], [])],
        [Sentence([], []), Sentence(["Paris"], ["B-LOC"]), Sentence([], [])],
    ):
        for context in (0, 8):
            features, windows, _ = encode_eval_windows(
                sentences, tokenizer, label2id, max_length=32, context_size=context
            )
            labelled = [label for f in features for label in f["labels"] if label != IGNORE_INDEX]
            assert labelled == [label2id[t] for s in sentences for t in s.tags or []]
            preds = [[0] * len(f["input_ids"]) for f in features]
            tags = word_predictions(windows, preds, sentences, dict(enumerate(LABELS)))
            assert [len(t) for t in tags] == [len(s.tokens) for s in sentences]
