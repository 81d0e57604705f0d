"""Inference: offsets, windowing, decoding, formats, errors, and agreement with the training evaluation."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fixtures import BIOES_LABELS, IOB2_LABELS, build_uncased_tokenizer, fit_tiny_model, save_tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig

from nerfocal.cli import evaluate as cli_evaluate
from nerfocal.cli import predict as cli_predict
from nerfocal.decode import transition_constraints, viterbi_decode
from nerfocal.labels import count_invalid_iob2, split_tag
from nerfocal.predict import Document, Predictor, resolve_device, split_words
from nerfocal.windows import select_readers, tokenize_windows

WORDS = ["Angela", "Merkel", "visited", "playing", "Paris", ","]
ODD_TEXTS = [
    "Angela Merkel visited Paris in June .",
    "Zoë Müller and José met in São Paulo 🙂 today",
    "The café\u200b in New-York\ufeff sold 3 cafe\u0301s ; \U0001f468\u200d\U0001f469\u200d\U0001f467 family",
    "\ufeffBerlin\u200b\u200bGermany \x07 London\u2060Reuters",
    "Ünal don't  \t pay\u00a0tax – «quoted» 東京 हिन्दी",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("iob2"), IOB2_LABELS, max_length=24, temperature=1.7)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return Predictor.from_pretrained(model_dir, device="cpu", batch_tokens=8192)


class BagModel(torch.nn.Module):
    """Logits depend only on the token id (no context, no position): a word's prediction is a fixed
    function of its first sub-word, whatever window it is read from."""

    def __init__(self, vocab_size: int, labels: list[str], max_length: int) -> None:
        super().__init__()
        self.config = BertConfig(
            vocab_size=vocab_size,
            max_position_embeddings=max_length,
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        generator = torch.Generator().manual_seed(0)
        self.table = torch.nn.Parameter(3 * torch.randn(vocab_size, len(labels), generator=generator))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return SimpleNamespace(logits=self.table[input_ids])  # [B, S, C]


def _args(parser_module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser_module.add_arguments(parser)
    return parser.parse_args(argv)


# --- words and offsets -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_split_words_offsets_slice_the_original_text(text: str) -> None:
    words, offsets = split_words(text)
    previous_end = 0
    for word, (start, end) in zip(words, offsets, strict=True):
        assert text[start:end] == word
        assert start >= previous_end and end > start
        assert not any(ch.isspace() for ch in word)
        previous_end = end


def test_split_words_keeps_accents_hyphens_and_apostrophes_together() -> None:
    words, _ = split_words("Zoë cafe\u0301 don't New-York-based हिन्दी 🙂! a\u200bb")
    assert words == ["Zoë", "cafe\u0301", "don't", "New-York-based", "हिन्दी", "🙂", "!", "a", "b"]
    assert split_words("a,b c", r"\S+")[0] == ["a,b", "c"]
    with pytest.raises(ValueError, match="split pattern"):
        Document.from_text("x", "(")


def test_entity_text_equals_original_slice_for_odd_characters(predictor: Predictor) -> None:
    results = predictor(ODD_TEXTS)
    assert sum(len(r) for r in results) > 5  # the random model predicts entities
    for text, entities in zip(ODD_TEXTS, results, strict=True):
        for entity in entities:
            assert entity["text"] == text[entity["start"] : entity["end"]]
            assert 0.0 < entity["score"] <= 1.0
            assert entity["label"] in {"LOC", "ORG", "PER"}


def test_entity_offsets_hold_with_a_pattern_that_keeps_zero_width_characters(predictor: Predictor) -> None:
    for text in ODD_TEXTS:
        doc = Document.from_text(text, r"\S+")
        prediction = predictor.predict_chunk([doc])[0]
        assert len(prediction.tags) == len(doc.words)
        for entity in prediction.entities:
            assert entity["text"] == text[entity["start"] : entity["end"]]


def test_words_with_no_subword_are_predicted_from_the_unknown_token() -> None:
    tokenizer = build_uncased_tokenizer()
    model = BagModel(len(tokenizer), IOB2_LABELS, max_length=512)
    predictor = Predictor(model, tokenizer, device="cpu", decode="argmax")
    words = ["Paris", "\u200b", "\ufeff", "\x07", "Berlin"]
    tags = predictor.predict_chunk([Document(words)])[0].tags
    unk_tag = IOB2_LABELS[int(model.table[tokenizer.unk_token_id].argmax())]
    assert tags[1:4] == [unk_tag] * 3


# --- long documents --------------------------------------------------------------------------------


def test_windows_default_to_the_training_max_length_capped_by_the_model(tmp_path: Path) -> None:
    directory = save_tiny_model(tmp_path / "model", IOB2_LABELS, max_length=24)
    assert Predictor.from_pretrained(directory, device="cpu").max_length == 24  # no training record
    for trained, expected in ((16, 16), (100, 24)):
        config = json.loads((directory / "config.json").read_text())
        config["nerfocal_max_length"] = trained
        (directory / "config.json").write_text(json.dumps(config))
        assert Predictor.from_pretrained(directory, device="cpu").max_length == expected
    assert Predictor.from_pretrained(directory, device="cpu", max_length=20).max_length == 20


def test_document_three_times_max_length_gets_exactly_one_tag_per_word(predictor: Predictor) -> None:
    words = [*WORDS, "São", "Paulo", "and", "the", "European", "Union", "🙂", "\u200b"] * 9
    input_ids, word_ids, window_docs = tokenize_windows(
        predictor.tokenizer, [words], predictor.max_length, predictor.stride
    )
    assert sum(len(ids) for ids in input_ids) >= 3 * predictor.max_length
    offsets = torch.tensor([0])
    selected, keys, _ = select_readers(word_ids, window_docs, offsets, len(words))
    counts = torch.bincount(keys[selected], minlength=len(words))
    zero_width = torch.tensor([w == "\u200b" for w in words])
    assert bool((counts[~zero_width] == 1).all())  # every word read once
    prediction = predictor.predict_chunk([Document(words)])[0]
    assert len(prediction.tags) == len(words) and len(prediction.scores) == len(words)


@pytest.mark.parametrize("decode", ["argmax", "viterbi"])
def test_windowed_prediction_reads_each_word_at_its_first_subword(decode: str) -> None:
    tokenizer = build_uncased_tokenizer()
    model = BagModel(len(tokenizer), IOB2_LABELS, max_length=512)
    words = [*WORDS, "Zoë", "Müller", "\u200b", "don't", "delegation"] * 7
    docs = [Document(words), Document(words[:5]), Document([])]
    windowed = Predictor(model, tokenizer, device="cpu", decode=decode, max_length=8, stride=2)
    whole = Predictor(model, tokenizer, device="cpu", decode=decode)
    short = windowed.predict_chunk(docs)
    long = whole.predict_chunk(docs)
    assert [p.tags for p in short] == [p.tags for p in long]
    if decode == "argmax":
        first_ids = [
            tokenizer(w or tokenizer.unk_token, add_special_tokens=False)["input_ids"] for w in words
        ]
        first_ids = [ids[0] if ids else tokenizer.unk_token_id for ids in first_ids]
        expected = [IOB2_LABELS[int(model.table[i].argmax())] for i in first_ids]
        assert short[0].tags == expected


# --- decoding --------------------------------------------------------------------------------------


def _valid_bioes(tags: list[str]) -> bool:
    open_type = ""
    for tag in tags:
        prefix, etype = split_tag(tag)
        if prefix in ("I", "E") and open_type != etype:
            return False
        if prefix in ("O", "B", "S") and open_type:
            return False
        open_type = etype if prefix in ("B", "I") else ""
    return not open_type


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(0, 2**31 - 1), st.sampled_from(["IOB2", "BIOES"]))
def test_viterbi_never_emits_invalid_transitions(batch: int, steps: int, seed: int, scheme: str) -> None:
    labels = IOB2_LABELS if scheme == "IOB2" else BIOES_LABELS
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(4 * torch.randn(batch, steps, len(labels), generator=generator), -1)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    tags = viterbi_decode(log_probs, lengths, transition_constraints(labels, scheme))
    for row, n in zip(tags.tolist(), lengths.tolist(), strict=True):
        sequence = [labels[t] for t in row[:n]]
        if scheme == "IOB2":
            assert count_invalid_iob2(sequence) == 0
        else:
            assert _valid_bioes(sequence)


@pytest.mark.parametrize("scheme", ["IOB2", "BIOES"])
def test_viterbi_finds_the_best_valid_sequence(scheme: str) -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] if scheme == "IOB2" else BIOES_LABELS[:5]
    log_probs = torch.log_softmax(
        torch.randn(6, 4, len(labels), generator=torch.Generator().manual_seed(1)), -1
    )
    tags = viterbi_decode(log_probs, torch.full((6,), 4), transition_constraints(labels, scheme))
    valid = _valid_bioes if scheme == "BIOES" else (lambda seq: count_invalid_iob2(seq) == 0)
    for b in range(6):
        scores = {
            path: sum(float(log_probs[b, t, i]) for t, i in enumerate(path))
            for path in itertools.product(range(len(labels)), repeat=4)
            if valid([labels[i] for i in path])
        }
        assert tuple(tags[b].tolist()) == max(scores, key=scores.__getitem__)


def test_argmax_decode_keeps_invalid_sequences_and_viterbi_repairs_them(model_dir: Path) -> None:
    raw = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax")
    valid = Predictor.from_pretrained(model_dir, device="cpu")
    docs = [Document.from_text(text) for text in ODD_TEXTS * 4]
    assert all(count_invalid_iob2(p.tags) == 0 for p in valid.predict_chunk(docs))
    raw_tags = [p.tags for p in raw.predict_chunk(docs)]
    assert sum(count_invalid_iob2(t) for t in raw_tags) > 0  # the random model does emit O -> I-X


def test_bioes_model_decodes_to_valid_bioes(tmp_path: Path) -> None:
    directory = save_tiny_model(tmp_path / "bioes", BIOES_LABELS, max_length=24, scheme="BIOES")
    raw = Predictor.from_pretrained(directory, device="cpu", decode="argmax")
    valid = Predictor.from_pretrained(directory, device="cpu")
    assert valid.scheme == "BIOES"
    docs = [Document.from_text(text) for text in ODD_TEXTS * 2]
    assert not all(_valid_bioes(p.tags) for p in raw.predict_chunk(docs))
    predictions = valid.predict_chunk(docs)
    assert all(_valid_bioes(p.tags) for p in predictions)
    for prediction in predictions:
        for entity in prediction.entities:
            assert entity["text"] == (prediction.document.text or "")[entity["start"] : entity["end"]]


def test_unavailable_or_unknown_device_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_temperature_changes_scores_not_argmax(model_dir: Path) -> None:
    calibrated = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax")
    plain = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax", temperature=False)
    assert calibrated.temperature == pytest.approx(1.7) and plain.temperature == 1.0
    a, b = (
        calibrated.predict_chunk([Document.from_text(ODD_TEXTS[0])])[0],
        plain.predict_chunk([Document.from_text(ODD_TEXTS[0])])[0],
    )
    assert a.tags == b.tags
    assert all(x < y + 1e-6 for x, y in zip(a.scores, b.scores, strict=True))


# --- Python API and streaming ----------------------------------------------------------------------


def test_call_accepts_a_text_texts_and_token_lists(predictor: Predictor) -> None:
    single = predictor(ODD_TEXTS[0])
    assert single == predictor([ODD_TEXTS[0]])[0]
    tokens = [["Angela", "Merkel", "visited", "Paris"], []]
    by_tokens = predictor(tokens)
    assert by_tokens[1] == []
    for entity in by_tokens[0]:
        assert entity["text"] == " ".join(tokens[0][entity["start"] : entity["end"]])
    with pytest.raises(TypeError):
        predictor([3])  # type: ignore[list-item]


def test_streaming_in_small_chunks_gives_the_same_results_in_input_order(model_dir: Path) -> None:
    texts = [t[: 5 + 7 * i] for i, t in enumerate(ODD_TEXTS * 3)]
    small = Predictor.from_pretrained(model_dir, device="cpu", chunk_size=2, batch_tokens=64)
    big = Predictor.from_pretrained(model_dir, device="cpu")
    streamed = list(small.predict_documents(Document.from_text(t) for t in texts))
    assert [p.document.text for p in streamed] == texts
    assert [p.tags for p in streamed] == [
        p.tags for p in big.predict_chunk([Document.from_text(t) for t in texts])
    ]


def test_empty_and_whitespace_documents_give_empty_results(predictor: Predictor) -> None:
    assert predictor(["", "   ", "\t\u200b\ufeff "]) == [[], [], []]
    assert predictor([]) == []
    assert list(predictor.predict_documents(iter([]))) == []


# --- command line ----------------------------------------------------------------------------------


def test_cli_predict_text_to_jsonl(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    lines = ["", *ODD_TEXTS, "   "]
    source.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["--model", str(model_dir), "--input", str(source), "--output", str(out), "--word-tags", "--quiet"]
    assert cli_predict.run(_args(cli_predict, [*args, "--device", "cpu"])) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == lines
    assert records[0]["entities"] == [] and records[-1]["entities"] == []
    for record in records:
        for entity in record["entities"]:
            assert entity["text"] == record["text"][entity["start"] : entity["end"]]
        assert len(record["pred_tags"]) == len(record["words"])


def test_cli_predict_conll_carries_gold_and_jsonl_passes_fields_through(
    model_dir: Path, tmp_path: Path
) -> None:
    conll = tmp_path / "gold.conll"
    conll.write_text("-DOCSTART- O\n\nAngela B-PER\nMerkel I-PER\n\nParis B-LOC\n.\tO\n", encoding="utf-8")
    out = tmp_path / "pred.conll"
    argv = ["--model", str(model_dir), "--input", str(conll), "--input-format", "conll", "--quiet"]
    assert cli_predict.run(_args(cli_predict, [*argv, "--output", str(out), "--output-format", "conll"])) == 0
    rows = [line.split() for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r[:2] for r in rows if r] == [
        ["Angela", "B-PER"],
        ["Merkel", "I-PER"],
        ["Paris", "B-LOC"],
        [".", "O"],
    ]
    assert all(len(r) == 3 for r in rows if r) and rows.count([]) == 2

    jsonl = tmp_path / "in.jsonl"
    records = [{"id": 1, "text": ODD_TEXTS[1], "meta": {"a": [1]}}, {"tokens": ["Paris", "\u200b"], "id": 2}]
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["--model", str(model_dir), "--input", str(jsonl), "--input-format", "jsonl", "--output", str(out)]
    assert cli_predict.run(_args(cli_predict, [*argv, "--quiet"])) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [{k: v for k, v in g.items() if k != "entities"} for g in got] == records
    assert all(0 <= e["start"] < e["end"] <= 2 for e in got[1]["entities"])


def test_cli_predict_reads_stdin_and_writes_stdout(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conll = "Angela B-PER\r\nMerkel I-PER\r\n\r\n\r\nParis B-LOC\r\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(conll.encode("utf-8"))))
    argv = ["--model", str(model_dir), "--input-format", "conll", "--output-format", "conll"]
    assert cli_predict.run(_args(cli_predict, argv)) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [r[:2] for r in rows if r] == [["Angela", "B-PER"], ["Merkel", "I-PER"], ["Paris", "B-LOC"]]

    text = "\ufeffZoë Müller\n\nParis\u200b!\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))
    assert cli_predict.run(_args(cli_predict, ["--model", str(model_dir)])) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["Zoë Müller", "", "Paris\u200b!"]


def test_cli_predict_empty_file_gives_empty_output(model_dir: Path, tmp_path: Path) -> None:
    for fmt in ("text", "conll", "jsonl"):
        source, out = tmp_path / f"empty.{fmt}", tmp_path / f"out.{fmt}"
        source.write_text("", encoding="utf-8")
        argv = [
            "--model",
            str(model_dir),
            "--input",
            str(source),
            "--input-format",
            fmt,
            "--output",
            str(out),
        ]
        assert cli_predict.run(_args(cli_predict, [*argv, "--quiet"])) == 0
        assert out.read_text(encoding="utf-8") == ""


def _break(directory: Path, how: str) -> None:
    if how == "no config":
        (directory / "config.json").unlink()
    elif how == "corrupt weights":
        (directory / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    elif how == "no weights":
        (directory / "model.safetensors").unlink()
    elif how == "no label map":
        config = json.loads((directory / "config.json").read_text())
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(len(config["id2label"]))}
        config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
        (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("how", ["missing", "no config", "corrupt weights", "no weights", "no label map"])
def test_bad_model_directory_gives_a_one_line_error_naming_it(
    how: str, model_dir: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "model"
    if how != "missing":
        directory.mkdir()
        for f in model_dir.iterdir():
            (directory / f.name).write_bytes(f.read_bytes())
        _break(directory, how)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        Predictor.from_pretrained(directory)
    assert str(directory) in str(info.value) and "\n" not in str(info.value)

    # the CLI turns these exception types into one "nerfocal predict: error: ..." line
    source = tmp_path / "in.txt"
    source.write_text("Paris\n", encoding="utf-8")
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        cli_predict.run(_args(cli_predict, ["--model", str(directory), "--input", str(source), "--quiet"]))
    assert str(directory) in str(info.value) and "\n" not in str(info.value)


def test_bad_input_gives_an_error_naming_the_line(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "ok"}\n{"tokens": [1, 2]}\n', encoding="utf-8")
    argv = ["--model", str(model_dir), "--input", str(source), "--input-format", "jsonl", "--quiet"]
    with pytest.raises(ValueError, match=re.escape(f"{source}:2")):
        cli_predict.run(_args(cli_predict, [*argv, "--output", str(tmp_path / "o.jsonl")]))
    assert not (tmp_path / "o.jsonl").exists()  # no half-written output
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        cli_predict.run(
            _args(cli_predict, ["--model", str(model_dir), "--input", str(tmp_path / "nope.txt")])
        )


# --- evaluate --------------------------------------------------------------------------------------

GOLD_IOB1 = """-DOCSTART- -X- O

Angela NNP I-PER
Merkel NNP I-PER
visited VBD O
Paris NNP I-LOC
in IN O
June NNP O
. . O

The DT O
European NNP I-ORG
Union NNP I-ORG
and CC O
São NNP I-LOC
Paulo NNP I-LOC
🙂 SYM O
playing VBG O
Berlin NNP I-LOC
Germany NNP B-LOC
London NNP I-LOC
Reuters NNP I-ORG
"""


@pytest.mark.parametrize("max_length", [24, 8])
def test_evaluate_matches_the_training_evaluation(tmp_path: Path, max_length: int) -> None:
    """Also with sentences split into windows (max_length 8): both read each word in the same window."""
    np = pytest.importorskip("numpy")
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from nerfocal.conll import read_conll
    from nerfocal.encode import encode_eval_windows
    from nerfocal.evaluate import score_logits
    from nerfocal.labels import convert_tags

    data = tmp_path / "test.conll"
    data.write_text(GOLD_IOB1 * 3, encoding="utf-8")
    gold = [(s.tokens, convert_tags(s.tags or [], "IOB1", "IOB2")) for s in read_conll(data)]
    model_dir = fit_tiny_model(save_tiny_model(tmp_path / "model", max_length=max_length), gold, steps=2)
    out = tmp_path / "eval.json"
    argv = [
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert cli_evaluate.run(_args(cli_evaluate, argv)) == 0
    ours = json.loads(out.read_text(encoding="utf-8"))

    # the training run's evaluation: IOB1 -> IOB2 gold, its windows, argmax per window, words, seqeval
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sentences = list(read_conll(data))
    for s in sentences:
        s.tags = convert_tags(s.tags or [], "IOB1", "IOB2")
    features, windows, _ = encode_eval_windows(
        sentences, tokenizer, model.config.label2id, max_length=max_length
    )
    assert (len(windows) > len(sentences)) == (max_length == 8)  # the split case splits
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features])
    mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features])
    labels = np.array([f["labels"] + [-100] * (width - len(f["labels"])) for f in features])
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask).logits.numpy()
    reference, _ = score_logits(logits, labels, windows, sentences, model.config.id2label)
    for key in ("precision", "recall", "f1", "macro_f1", "accuracy"):
        assert math.isclose(ours[key], reference[key], abs_tol=1e-9), key
    assert ours["per_type"] == reference["per_type"]
    assert 0.0 < ours["f1"] < 1.0  # a half-trained model: the comparison is not between two zeros
    assert ours["n_sentences"] == 6 and ours["gold_scheme"] == "IOB1" and ours["decode"] == "argmax"

    # the training run's viterbi_* scores are those of `nerfocal evaluate --decode viterbi`
    assert cli_evaluate.run(_args(cli_evaluate, [*argv, "--decode", "viterbi"])) == 0
    viterbi = json.loads(out.read_text(encoding="utf-8"))
    scored, _ = score_logits(logits, labels, windows, sentences, model.config.id2label, viterbi=True)
    for key in ("precision", "recall", "f1", "macro_f1"):
        assert math.isclose(viterbi[key], scored[f"viterbi_{key}"], abs_tol=1e-9), key
        assert scored[key] == reference[key]  # the argmax scores are unchanged


def test_viterbi_metrics_repair_what_argmax_breaks() -> None:
    """An ``I-PER`` after ``O`` under argmax: the Viterbi scores read the valid ``B-PER I-PER``."""
    np = pytest.importorskip("numpy")
    from nerfocal.conll import Sentence
    from nerfocal.encode import Window
    from nerfocal.evaluate import score_logits

    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    sentence = Sentence(["Anna", "Novak", "spoke", "long"], ["B-PER", "I-PER", "O", "O"], line=1)
    # sub-words 0..4 (4: the 2nd piece of "long"; never read); "Anna": I-PER 0.5, B-PER 0.4
    probs = [[0.1, 0.4, 0.5], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]
    logits = np.log(np.array([probs], dtype=np.float32))
    labels = np.array([[2, 2, 0, 0, -100]])
    window = Window(sentence_index=0, word_offset=0, first_subwords=[0, 1, 2, 3])
    metrics, tags = score_logits(logits, labels, [window], [sentence], id2label, viterbi=True)
    assert tags == [["I-PER", "I-PER", "O", "O"]]  # argmax, as the training scores read it
    assert metrics["viterbi_f1"] == 1.0 and metrics["viterbi_precision"] == 1.0
    # seqeval's default mode reads the broken I-PER I-PER as one PER too: strict mode tells them apart
    strict, _ = score_logits(logits, labels, [window], [sentence], id2label, strict=True, viterbi=True)
    assert strict["f1"] == 0.0 and strict["viterbi_f1"] == 1.0
    # an O bias moves the Viterbi decision as it moves the argmax: 'spoke' becomes an entity word
    biased, _ = score_logits(logits, labels, [window], [sentence], id2label, viterbi=True, o_bias=3.0)
    assert biased["viterbi_precision"] < 1.0


def test_bfloat16_runs_the_encoder_in_bf16_and_keeps_float32_scores(tmp_path: Path) -> None:
    from nerfocal.predict import Predictor

    model_dir = save_tiny_model(tmp_path / "m")
    exact = Predictor.from_pretrained(model_dir, decode="argmax")
    fast = Predictor.from_pretrained(model_dir, decode="argmax", dtype="bfloat16")
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    texts = ["Anna Novak flew to Lisbon .", "Orion Labs hired Priya Okafor ."]
    a, b = (
        exact.predict_documents(map(exact.document, texts)),
        fast.predict_documents(map(fast.document, texts)),
    )
    for x, y in zip(a, b, strict=True):
        assert len(x.tags) == len(y.tags) and all(isinstance(s, float) and 0 <= s <= 1 for s in y.scores)
    with pytest.raises(ValueError, match="expected dtype in"):
        Predictor.from_pretrained(model_dir, dtype="int4")


def test_a_batch_closes_before_a_window_under_half_its_width(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mixed lengths (the server's micro-batches): no row is padded to more than twice its length, and the
    tags are those of predicting each document alone."""
    predictor = Predictor.from_pretrained(model_dir, device="cpu")
    texts = ["word " * n for n in (40, 30, 21, 19, 9, 3, 2)]
    calls: list[tuple[int, list[int]]] = []
    forward = predictor._forward

    def spy(rows: list[list[int]], width: int) -> Any:
        calls.append((width, [len(r) for r in rows]))
        return forward(rows, width)

    monkeypatch.setattr(predictor, "_forward", spy)
    together = predictor.predict_chunk([Document.from_text(t) for t in texts])
    assert len(calls) > 1
    assert all(2 * min(lengths) >= width for width, lengths in calls), calls
    assert sum(len(lengths) for _, lengths in calls) * max(w for w, _ in calls) <= predictor.batch_tokens
    alone = [predictor.predict_chunk([Document.from_text(t)])[0] for t in texts]
    assert [p.tags for p in together] == [p.tags for p in alone]
