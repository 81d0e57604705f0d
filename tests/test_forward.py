"""Forward passes: padded groups, packed rows (several windows per row, block-diagonal attention)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures import IOB2_LABELS, save_tiny_model, tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfocal.forward import forward_groups, packed_logits, padded_logits, plan_rows, supports_packing
from nerfocal.predict import Document, Predictor


@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.integers(40, 100))
@settings(max_examples=60, deadline=None)
def test_plan_rows_places_every_window_once_within_the_width(lengths: list[int], width: int) -> None:
    rows = plan_rows(lengths, width)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= width for row in rows)
    assert sum(lengths) > width * (len(rows) - 1) / 2  # first-fit decreasing: rows at least half full


@given(st.lists(st.integers(1, 64), min_size=1, max_size=80), st.integers(64, 512), st.booleans())
@settings(max_examples=80, deadline=None)
def test_forward_groups_cover_the_order_within_the_budgets(
    lengths: list[int], budget: int, pack: bool
) -> None:
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    groups = list(forward_groups(lengths, batch_tokens=budget, max_batch_size=16, pack=pack))
    assert [i for group in groups for i in group] == order
    for group in groups:
        assert len(group) <= 16
        if pack:  # the tokens themselves, no padding, within the budget (a lone window may exceed it)
            assert len(group) == 1 or sum(lengths[i] for i in group) <= budget
        else:  # padded to the first (longest): within the budget, none under half its width
            width = lengths[group[0]]
            assert len(group) * width <= max(budget, width)
            assert all(2 * lengths[i] >= width for i in group)


def _windows(rng: random.Random, n: int, vocab: int, longest: int) -> list[list[int]]:
    return [[rng.randrange(5, vocab) for _ in range(rng.randint(1, longest))] for _ in range(n)]


def test_packed_logits_equal_padded_ones_on_a_bert_encoder() -> None:
    model = tiny_model(IOB2_LABELS, seed=3, vocab_size=200, max_position=64).eval()
    rng = random.Random(0)
    rows = [*_windows(rng, 23, 200, 40), [7] * 60]  # one window longer than a packed row's 48
    width = max(len(r) for r in rows)
    with torch.inference_mode():
        padded = padded_logits(model, rows, width, 0, "cpu")
        packed = packed_logits(model, rows, width, 0, "cpu", pack_width=48)
    assert packed.shape == padded.shape
    for i, row in enumerate(rows):  # positions past a window's end are not compared (padding)
        torch.testing.assert_close(packed[i, : len(row)], padded[i, : len(row)], atol=1e-5, rtol=1e-4)
    assert float(padded.std()) > 0.1  # a model whose logits vary: the comparison can fail


def test_packing_is_refused_for_a_model_it_would_change_or_that_cannot_take_it() -> None:
    from transformers import RobertaConfig, RobertaForTokenClassification

    bert = tiny_model(IOB2_LABELS, seed=1, vocab_size=200).eval()
    assert supports_packing(bert, 0, "cpu", 200)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=80, num_labels=len(IOB2_LABELS), pad_token_id=1,
    )  # fmt: skip
    roberta = RobertaForTokenClassification(config).eval()  # positions start after the padding id
    assert not supports_packing(roberta, 1, "cpu", 200)

    class NoPositions(torch.nn.Module):  # like the ONNX model: input ids and a 2-D mask only
        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return bert(input_ids=input_ids, attention_mask=attention_mask)

    assert not supports_packing(NoPositions(), 0, "cpu", 200)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("pack"), IOB2_LABELS, max_length=24)


def test_a_packing_predictor_tags_every_document_as_the_padding_one(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    padded = Predictor.from_pretrained(model_dir, device="cpu")
    packed = Predictor.from_pretrained(model_dir, device="cpu", pack=True)
    assert packed.pack and not padded.pack
    rng = random.Random(1)
    words = ["Paris", "Anna", "Novak", "visited", "the", "Orion", "Labs", "in", "June", ".", "Berlin"]
    # short documents, and some longer than the 24-token windows (several windows each, with stride)
    documents = [Document([rng.choice(words) for _ in range(rng.randint(1, 40))]) for _ in range(60)]
    expected = padded.predict_chunk(documents)
    got = packed.predict_chunk(documents)
    assert [p.tags for p in got] == [p.tags for p in expected]
    assert sum(t != "O" for p in expected for t in p.tags) > 20  # entities to disagree about
    for a, b in zip(got, expected, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    # a model that fails the check (an ONNX one, a RoBERTa) is padded instead
    monkeypatch.setattr("nerfocal.predict.supports_packing", lambda *args: False)
    assert not Predictor(padded.model, padded.tokenizer, pack=True).pack


def test_packing_keeps_the_tags_of_sentences_read_with_their_context(model_dir: Path) -> None:
    padded = Predictor.from_pretrained(model_dir, device="cpu", context_size=6)
    packed = Predictor.from_pretrained(model_dir, device="cpu", context_size=6, pack=True)
    assert packed.pack and packed.context_size == 6
    rng = random.Random(2)
    words = ["Paris", "Anna", "Novak", "visited", "Orion", "Labs", "in", "June", "."]
    documents = [
        [[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 5))]
        for _ in range(12)
    ]
    inputs = [[list(s) for s in doc] for doc in documents]
    expected, got = padded.predict_sentences(inputs), packed.predict_sentences(inputs)
    strip = lambda docs: [[[(e["label"], e["start"], e["end"]) for e in s] for s in d] for d in docs]  # noqa: E731
    assert strip(got) == strip(expected)
    assert sum(len(s) for d in expected for s in d) > 10  # entities to disagree about
