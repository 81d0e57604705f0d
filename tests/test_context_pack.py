"""Training on packed runs of sentences (``context_pack``): each run of consecutive sentences of a
document is one sequence, every word labelled exactly once, the run's outer context never labelled,
runs never crossing documents; the run saves ``context_pack`` and predict, evaluate and the training
evaluation read the same packed windows (docs/context.md#packing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import LABELS, SAMPLE, build_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfocal.cli import main as cli_main
from nerfocal.config import parse_config
from nerfocal.conll import Sentence, read_conll
from nerfocal.documents import read_documents
from nerfocal.encode import encode_eval_windows, encode_sentences
from nerfocal.labels import IGNORE_INDEX
from nerfocal.predict import Predictor
from nerfocal.training import feature_label_counts

LABEL2ID = {label: i for i, label in enumerate(LABELS)}
CONTEXT, PACK = 8, 24
RUN_PACK = 46  # the end-to-end run: all that a 64-sub-word window leaves besides 2 x 8 of context
WORDS = ["Paris", "visited", "the", "minister", "said", "Toronto", "Film", "Days", "drew", "people"]
TAGS = ["B-LOC", "O", "O", "O", "O", "B-LOC", "B-EVENT", "I-EVENT", "O", "O"]


def _documents(shape: list[list[int]], ids: bool = True) -> list[Sentence]:
    """Sentences of the given lengths per document, words cycling through WORDS."""
    out, k = [], 0
    for d, lengths in enumerate(shape):
        for n in lengths:
            picks = [(k + j) % len(WORDS) for j in range(n)]
            k += n
            out.append(
                Sentence(
                    [WORDS[p] for p in picks], [TAGS[p] for p in picks], document=f"d{d}" if ids else None
                )
            )
    return out


def _ids(tokenizer: Any, i: int, sentences: list[Sentence]) -> list[int]:
    return [t for ids in tokenizer(sentences[i].tokens, add_special_tokens=False)["input_ids"] for t in ids]


def _labelled(feature: dict[str, Any]) -> list[int]:
    return [label for label in feature["labels"] if label != IGNORE_INDEX]


def _gold(sentences: list[Sentence]) -> list[int]:
    return [LABEL2ID[t] for s in sentences for t in s.tags or []]


def _runs(sentences: list[Sentence], windows: list[Any], features: list[dict[str, Any]]) -> list[list[int]]:
    """The sentence indices of each sequence, from its first sentence and its labelled words."""
    runs = []
    for window, feature in zip(windows, features, strict=True):
        i, left = window.sentence_index, len(_labelled(feature))
        run = []
        while left > 0:
            run.append(i)
            left -= len(sentences[i].tokens)
            i += 1
        assert left == 0, "a sequence ends inside a sentence"
        runs.append(run)
    return runs


def test_packed_runs_label_every_word_once_and_stay_in_their_document() -> None:
    tokenizer = build_tokenizer()
    sentences = _documents([[3, 4, 2, 5, 3], [4], [2, 6, 3, 2]])
    options = dict(max_length=64, context_size=CONTEXT)
    alone, _, _ = encode_sentences(sentences, tokenizer, LABEL2ID, **options)
    packed, windows, stats = encode_sentences(sentences, tokenizer, LABEL2ID, context_pack=PACK, **options)
    assert len(alone) == len(sentences) and len(packed) < len(alone)
    # the same labels at the same words, in order: nothing lost, nothing counted twice
    assert [label for f in packed for label in _labelled(f)] == _gold(sentences)
    assert feature_label_counts(packed, len(LABELS)) == feature_label_counts(alone, len(LABELS))
    runs = _runs(sentences, windows, packed)
    assert [i for run in runs for i in run] == list(range(len(sentences)))
    for run in runs:
        assert len({sentences[i].document for i in run}) == 1  # never across a document edge
        words = [w for i in run for w in sentences[i].tokens]
        assert (
            len(run) == 1
            or len(tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]) <= PACK
        )
    assert any(len(run) > 1 for run in runs)
    k = runs.index([5])  # the one-sentence document: alone, and without context
    assert (
        packed[k]["input_ids"]
        == alone[5]["input_ids"]
        == alone[5]["input_ids"][:1] + _ids(tokenizer, 5, sentences) + alone[5]["input_ids"][-1:]
    )
    assert stats.context_sentences == len(sentences) - 1


def test_the_outer_context_is_never_labelled_and_context_dropout_keeps_the_runs() -> None:
    tokenizer = build_tokenizer()
    sentences = _documents([[3, 4, 2, 5, 3, 4, 2]])
    options = dict(max_length=64, context_size=CONTEXT, context_pack=10)
    packed, _, _ = encode_sentences(sentences, tokenizer, LABEL2ID, **options)
    bare, _, _ = encode_sentences(sentences, tokenizer, LABEL2ID, outer_context=False, **options)
    assert [_labelled(f) for f in bare] == [_labelled(f) for f in packed]
    for with_context, without in zip(packed, bare, strict=True):
        own = len(without["input_ids"])  # the run and its two special tokens, nothing else
        assert len(with_context["input_ids"]) > own  # every run of this document has a neighbour
        inner = [j for j, label in enumerate(with_context["labels"]) if label != IGNORE_INDEX]
        # left context before the first labelled word, right context after the run: all IGNORE_INDEX
        assert all(label == IGNORE_INDEX for label in with_context["labels"][: inner[0]])
        assert len(with_context["input_ids"]) - own <= 2 * CONTEXT


def test_a_sentence_longer_than_the_window_keeps_its_windows_and_is_never_packed() -> None:
    tokenizer = build_tokenizer()
    sentences = _documents([[2, 40, 2]])
    features, windows, stats = encode_sentences(
        sentences, tokenizer, LABEL2ID, max_length=24, context_size=4, context_pack=12
    )
    assert stats.split_sentences == 1
    assert [label for f in features for label in _labelled(f)] == _gold(sentences)
    long_windows = [k for k, w in enumerate(windows) if w.sentence_index == 1]
    assert len(long_windows) > 1
    for k in long_windows:  # whole-word windows of the long sentence alone: no context, no neighbour
        words = sentences[1].tokens[windows[k].word_offset :][: len(windows[k].first_subwords)]
        ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        assert len(features[k]["input_ids"]) == len(ids) + 2
    assert [w.sentence_index for w in windows if w.sentence_index != 1] == [0, 2]  # alone, not packed


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=6), min_size=1, max_size=4),
    pack=st.integers(0, 40),
    size=st.integers(0, 10),
)
def test_any_packing_labels_each_word_once_in_order(shape: list[list[int]], pack: int, size: int) -> None:
    tokenizer = build_tokenizer()
    sentences = _documents(shape)
    features, windows, _ = encode_sentences(
        sentences, tokenizer, LABEL2ID, max_length=48, context_size=size, context_pack=pack
    )
    assert [label for f in features for label in _labelled(f)] == _gold(sentences)
    for run in _runs(sentences, windows, features):
        assert len({sentences[i].document for i in run}) == 1
    assert all(len(f["input_ids"]) <= 48 for f in features)


def test_evaluation_reads_each_packed_run_once_as_training_encoded_it() -> None:
    tokenizer = build_tokenizer()
    sentences = _documents([[3, 4, 2, 5, 3], [4], [2, 6, 3, 2]])
    options: dict[str, Any] = dict(max_length=64, context_size=CONTEXT, context_pack=PACK)
    features, windows, stats = encode_eval_windows(sentences, tokenizer, LABEL2ID, **options)
    trained, train_windows, _ = encode_sentences(sentences, tokenizer, LABEL2ID, **options)
    assert stats.sequences == len(features) < len(sentences)
    assert [label for f in features for label in _labelled(f)] == _gold(sentences)  # each word read once
    assert _runs(sentences, windows, features) == _runs(sentences, train_windows, trained)
    assert [f["input_ids"] for f in features] == [f["input_ids"] for f in trained]  # the same sequences


def test_context_pack_is_checked_like_context_size_and_needs_it() -> None:
    base = ["--train_file", "x.conll", "--output_dir", "o"]
    with pytest.raises(ValueError, match=r"^invalid DataConfig: context_pack: expected an integer >= 0"):
        parse_config([*base, "--context_size", "8", "--context_pack", "-2"])
    with pytest.raises(ValueError, match=r"^invalid DataConfig: context_pack: expected context_size > 0"):
        parse_config([*base, "--context_pack", "16"])


def test_the_saved_value_is_the_packing_used() -> None:
    """A pack larger than the window leaves is capped before training, and that is what is saved."""
    from types import SimpleNamespace

    from nerfocal.data import NerData
    from nerfocal.training import prepare_data

    tokenizer = build_tokenizer()
    sentences = _documents([[3, 4, 2, 5]])
    data = NerData({"train": sentences}, LABELS, "IOB2")
    cfg = SimpleNamespace(max_length=32, context_size=8, context_pack=1000, context_dropout=0.0)
    cfg.__dict__.update(max_train_samples=None, long_sentences="split", label_all_tokens=False)
    assert prepare_data(cfg, tokenizer, data).context_pack == 32 - 2 - 2 * 8


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    from nerfocal.cli.train import main

    tmp = tmp_path_factory.mktemp("packed_run")
    documents = []
    for name, count, per in (("train", 48, 4), ("dev", 30, 5)):
        lines = []
        for i, s in enumerate(list(read_conll(SAMPLE / f"{name}.conll"))[:count]):
            lines.append("-DOCSTART- O\n\n" if i % per == 0 else "")
            lines.append("".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags or [], strict=True)) + "\n")
        documents.append(tmp / f"{name}.conll")
        documents[-1].write_text("".join(lines), encoding="utf-8")
    out = tmp / "run"
    argv = ["--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(documents[0])]
    argv += ["--validation_file", str(documents[1]), "--output_dir", str(out), "--max_steps", "4"]
    argv += ["--max_length", "64", "--context_size", str(CONTEXT), "--context_pack", str(RUN_PACK)]
    argv += ["--context_dropout", "0.5", "--use_cpu", "true", "--disable_tqdm", "true"]
    argv += ["--learning_rate", "5e-3", "--seed", "3", "--unknown_labels", "O"]
    assert main(argv) == 0
    return out


def test_the_run_saves_context_pack_and_predict_reads_what_the_training_evaluation_read(
    packed_run: Path,
) -> None:
    assert json.loads((packed_run / "config.json").read_text())["nerfocal_context_pack"] == RUN_PACK
    data = json.loads((packed_run / "eval_results.json").read_text())["data"]
    assert data["train"]["sentences"] == 48 and 12 <= data["train"]["sequences"] < 48  # runs, not sentences
    assert data["validation"]["sequences"] < 30  # evaluation: each packed run read once, as predict reads it
    predictor = Predictor.from_pretrained(packed_run, device="cpu", decode="argmax")
    assert (predictor.context_size, predictor.context_pack) == (CONTEXT, RUN_PACK)  # the saved defaults
    # the training evaluation's per-word confidences (Trainer.predict on the encoded dev windows)
    lines = (packed_run / "predictions_validation.jsonl").read_text().splitlines()
    trained = [json.loads(line)["confidence"] for line in lines]

    def gap(p: Predictor) -> float:
        dev = read_documents(str(packed_run.parent / "dev.conll"), "conll", "utf-8", None)
        scores = [prediction.scores for prediction in p.predict_documents(dev)]
        return max(
            abs(a - b) for x, y in zip(trained, scores, strict=True) for a, b in zip(x, y, strict=True)
        )

    assert gap(predictor) < 1e-5  # the same windows, so the same probabilities
    out = packed_run.parent / "eval.json"  # nerfocal evaluate without --context-pack: the saved packing
    argv = ["evaluate", "--model", str(packed_run), "--data", str(packed_run.parent / "dev.conll")]
    assert cli_main([*argv, "--output", str(out), "--device", "cpu", "--quiet"]) == 0
    assert json.loads(out.read_text())["context_pack"] == RUN_PACK
    exact = Predictor.from_pretrained(packed_run, device="cpu", decode="argmax", context_pack=0)
    assert exact.context_pack == 0 and gap(exact) > 1e-3  # the flag overrides the saved packing
