"""Document context, the edges: over-long sentences among neighbours, the options that say what a document
is (training, predict, evaluate, report), dataset ``sentence_id`` order, and context read in file order
whatever order the sampler later visits the sentences in (docs/context.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import SAMPLE

import nerfocal.encode
from nerfocal.cli import evaluate as cli_evaluate
from nerfocal.cli import predict as cli_predict
from nerfocal.cli import report as cli_report
from nerfocal.conll import DataFormatError, read_conll
from nerfocal.documents import read_documents
from nerfocal.predict import Predictor

CONTEXT = 12
MAX_LENGTH = 32


def _args(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def _conll(sentences: list[Any], per_document: int) -> str:
    lines = []
    for i, s in enumerate(sentences):
        if i % per_document == 0:
            lines.append("-DOCSTART- O\n\n")
        lines.append("".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags or [], strict=True)) + "\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """A tiny context run whose dev set holds an over-long sentence (several windows at max_length 32)
    in the middle of a document of short ones."""
    from nerfocal.cli.train import main

    tmp = tmp_path_factory.mktemp("context_edges")
    sample = list(read_conll(SAMPLE / "dev.conll"))
    long = sample[0].__class__(
        tokens=[w for s in sample[:8] for w in s.tokens], tags=[t for s in sample[:8] for t in s.tags or []]
    )
    assert len(long.tokens) > 2 * MAX_LENGTH
    dev = [*sample[8:11], long, *sample[11:22]]
    (tmp / "dev.conll").write_text(_conll(dev, 5), encoding="utf-8")
    (tmp / "train.conll").write_text(
        _conll(list(read_conll(SAMPLE / "train.conll"))[:40], 4), encoding="utf-8"
    )
    out = tmp / "run"
    argv = ["--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(tmp / "train.conll")]
    argv += ["--validation_file", str(tmp / "dev.conll"), "--output_dir", str(out), "--max_steps", "4"]
    argv += ["--max_length", str(MAX_LENGTH), "--context_size", str(CONTEXT), "--use_cpu", "true"]
    argv += ["--disable_tqdm", "true", "--learning_rate", "5e-3", "--seed", "3", "--unknown_labels", "O"]
    assert main(argv) == 0
    return out


def _dev(run: Path) -> Path:
    return run.parent / "dev.conll"


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The word sequences the Predictor reads (a sentence with its context), as they are tokenized."""
    import nerfocal.predict as predict_module

    seen: list[tuple[str, ...]] = []
    original = predict_module.tokenize_windows

    def spy(tokenizer: Any, lists: list[list[str]], *args: Any) -> Any:
        seen.extend(map(tuple, lists))
        return original(tokenizer, lists, *args)

    monkeypatch.setattr(predict_module, "tokenize_windows", spy)
    return seen


def _sentences(path: Path) -> set[tuple[str, ...]]:
    return {tuple(s.tokens) for s in read_conll(path)}


def test_an_over_long_sentence_is_read_without_context_and_as_in_training(
    run: Path, windows: list[tuple[str, ...]]
) -> None:
    trained = [json.loads(line) for line in (run / "predictions_validation.jsonl").read_text().splitlines()]
    long = max(trained, key=lambda r: len(r["tokens"]))
    assert len(long["tokens"]) > 2 * MAX_LENGTH and len(long["pred"]) == len(long["tokens"])  # every word
    predictor = Predictor.from_pretrained(run, device="cpu", decode="argmax")
    assert predictor.context_size == CONTEXT
    predicted = list(predictor.predict_documents(read_documents(str(_dev(run)), "conll", "utf-8", None)))
    # the training evaluation (Trainer.predict on its encoded windows) and the Predictor agree everywhere
    assert [p.tags for p in predicted] == [r["pred"] for r in trained]
    # the long sentence fills its windows: it is read alone, split into windows of its own words
    assert tuple(long["tokens"]) in windows
    assert not any(len(w) > len(long["tokens"]) and set(long["tokens"]) <= set(w) for w in windows)
    # while the short sentences of its document do read their neighbours
    assert len(windows) == len(trained) and sum(w not in _sentences(_dev(run)) for w in windows) >= 10


def _predict(run: Path, source: Path, *extra: str) -> None:
    argv = ["--model", str(run), "--input", str(source), "--output", str(source.with_suffix(".out"))]
    assert cli_predict.run(_args(cli_predict, [*argv, "--quiet", "--device", "cpu", *extra])) == 0


def test_predict_document_boundary_and_text_documents_decide_what_context_is_read(
    run: Path, tmp_path: Path, windows: list[tuple[str, ...]]
) -> None:
    sentences = _sentences(_dev(run))
    _predict(run, _dev(run), "--input-format", "conll")
    assert any(w not in sentences for w in windows)  # documents from -DOCSTART-: context read
    windows.clear()
    _predict(run, _dev(run), "--input-format", "conll", "--document-boundary", "sentence")
    assert windows and all(w in sentences for w in windows)  # each sentence its own document
    text = tmp_path / "in.txt"
    text.write_text("".join(" ".join(s) + "\n" for s in sorted(sentences)[:4]), encoding="utf-8")
    windows.clear()
    _predict(run, text)  # no blank line: one document
    assert len(windows) == 4 and sum(w not in sentences for w in windows) >= 2  # lines read their neighbours
    windows.clear()
    _predict(run, text, "--text-documents", "lines")
    assert len(windows) == 4 and all(w in sentences for w in windows)


def test_evaluate_document_boundary_sentence_reads_no_context(
    run: Path, tmp_path: Path, windows: list[tuple[str, ...]]
) -> None:
    argv = ["--model", str(run), "--data", str(_dev(run)), "--output", str(tmp_path / "e.json"), "--quiet"]
    assert cli_evaluate.run(_args(cli_evaluate, [*argv, "--device", "cpu"])) == 0
    assert any(w not in _sentences(_dev(run)) for w in windows)
    windows.clear()
    assert cli_evaluate.run(_args(cli_evaluate, [*argv, "--document-boundary", "sentence"])) == 0
    assert windows and all(w in _sentences(_dev(run)) for w in windows)


def test_report_data_reads_the_saved_context_and_its_options(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nerfocal.evaluate

    calls: list[tuple[int, list[Any]]] = []
    real = nerfocal.evaluate.predict_words

    def spy(predictor: Any, tokens: Any, gold: Any, documents: Any = None) -> Any:
        calls.append((predictor.context_size, list(documents)))
        return real(predictor, tokens, gold, documents)

    monkeypatch.setattr(nerfocal.evaluate, "predict_words", spy)
    base = [str(run), "--data", str(_dev(run)), "--report-dir", str(tmp_path / "r"), "--format", "md"]
    for extra in ([], ["--context-size", "0"], ["--document-boundary", "sentence"]):
        assert cli_report.run(_args(cli_report, [*base, "--device", "cpu", *extra])) == 0
    (saved, docs), (zero, _), (_, alone) = calls
    assert (saved, zero) == (CONTEXT, 0)
    assert docs == [s.document for s in read_conll(_dev(run))] and len(set(docs)) == 3  # its -DOCSTART-s
    assert alone == [None] * len(docs)  # each sentence its own document
    with pytest.raises(ValueError, match=r"^--document-boundary: expected a valid regular"):
        cli_report.run(_args(cli_report, [*base, "--document-boundary", "re:("]))


def test_training_document_boundary_makes_each_sentence_a_document(tmp_path: Path) -> None:
    from nerfocal.config import DataConfig
    from nerfocal.data import load_ner_data

    train = tmp_path / "train.conll"
    train.write_text(_conll(list(read_conll(SAMPLE / "train.conll"))[:6], 3), encoding="utf-8")
    marked = load_ner_data(DataConfig(train_file=str(train))).sentences["train"]
    assert [s.document for s in marked] == ["1", "1", "1", "2", "2", "2"]
    alone = load_ner_data(DataConfig(train_file=str(train), document_boundary="sentence")).sentences["train"]
    assert [s.document for s in alone] == [None] * 6  # no document: no context


def test_dataset_sentence_ids_must_increase_within_consecutive_documents(tmp_path: Path) -> None:
    import datasets

    from nerfocal.data import read_hf_dataset

    def saved(name: str, documents: list[Any], sentence_ids: list[Any]) -> str:
        rows = {"tokens": [["w"]] * len(documents), "tags": [["O"]] * len(documents)}
        table = datasets.Dataset.from_dict({**rows, "document_id": documents, "sentence_id": sentence_ids})
        datasets.DatasetDict({"train": table}).save_to_disk(str(tmp_path / name))
        return str(tmp_path / name)

    ok = read_hf_dataset(None, None, saved("ok", ["a", "a", "b"], [0, 1, 0]))["train"]
    assert [s.document for s in ok] == ["a", "a", "b"]
    with pytest.raises(DataFormatError, match=r"train: row 1: sentence_id 0 after 3 in document 'a'"):
        read_hf_dataset(None, None, saved("back", ["a", "a"], [3, 0]))
    with pytest.raises(
        DataFormatError, match=r"train: row 2: document_id 'a' again after records of another"
    ):
        read_hf_dataset(None, None, saved("split", ["a", "b", "a"], [0, 0, 1]))


def test_context_is_read_in_file_order_whatever_the_sampler_does(
    tiny_encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Context is chosen when the data is encoded, from the sentences in file order; the sampler later
    shuffles whole encoded sentences (their context travels with them)."""
    from nerfocal.config import parse_config
    from nerfocal.loading import load_tokenizer
    from nerfocal.training import prepare_data

    train = tmp_path / "train.conll"
    sentences = list(read_conll(SAMPLE / "train.conll"))[:12]
    train.write_text(_conll(sentences, 4), encoding="utf-8")
    orders: list[list[list[str]]] = []
    real = nerfocal.encode.sentence_contexts

    def spy(word_lists: Any, *args: Any) -> Any:
        orders.append([list(w) for w in word_lists])
        return real(word_lists, *args)

    monkeypatch.setattr(nerfocal.encode, "sentence_contexts", spy)
    _, data_cfg, _, _ = parse_config(
        ["--train_file", str(train), "--context_size", "8", "--train_sampling_strategy", "random"]
    )
    prepared = prepare_data(data_cfg, load_tokenizer(str(tiny_encoder_dir)))
    assert orders[0] == [s.tokens for s in sentences]  # file order, not the sampler's nor sorted by length
    assert len(prepared.train_features) == len(sentences)
