"""`nerfocal predict --num-workers N`: the same bytes as one process, and a failure leaves no output."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures import CORPUS, save_tiny_model

from nerfocal.cli import main
from nerfocal.predict import Document, Predictor
from nerfocal.predict_workers import document_chunks

LINES = 240  # with --chunk-size 16: 15 chunks, several in flight per worker


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("workers") / "model")


def _texts() -> list[str]:
    words = " ".join(CORPUS).split()
    # short lines of varied length, with an empty one now and then
    return [" ".join(words[i % 40 : i % 40 + (i * 7) % 13]) for i in range(LINES)]


def _write_input(directory: Path, input_format: str) -> Path:
    texts = _texts()
    if input_format == "text":
        path = directory / "in.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif input_format == "jsonl":
        path = directory / "in.jsonl"
        records = [
            {"id": i, "text": t} if i % 3 else {"id": i, "tokens": t.split()} for i, t in enumerate(texts)
        ]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        path = directory / "in.conll"
        blocks = ["\n".join(f"{w} O" for w in t.split()) for t in texts if t.split()]
        path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def _predict(model_dir: Path, source: Path, out: Path, *options: str) -> int:
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    return main([*argv, "--device", "cpu", "--chunk-size", "16", "--quiet", *options])


@pytest.mark.parametrize(
    ("input_format", "output_format", "extra"),
    [
        ("text", "jsonl", ["--word-tags"]),
        ("jsonl", "html", []),
        ("conll", "conll", []),
    ],
)
def test_two_workers_write_the_same_bytes_as_one_process(
    model_dir: Path, tmp_path: Path, input_format: str, output_format: str, extra: list[str]
) -> None:
    source = _write_input(tmp_path, input_format)
    options = ["--input-format", input_format, "--output-format", output_format, *extra]
    one, two = tmp_path / "one.out", tmp_path / "two.out"
    assert _predict(model_dir, source, one, *options) == 0
    assert _predict(model_dir, source, two, *options, "--num-workers", "2") == 0
    assert one.read_bytes() == two.read_bytes()
    if output_format == "jsonl":
        assert len(one.read_text(encoding="utf-8").splitlines()) == LINES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "one.out", "two.out"])


def test_chunks_follow_the_predictor_rule_and_keep_every_document() -> None:
    documents = [Document.from_text(t) for t in _texts()]
    chunks = list(document_chunks(documents, chunk_size=16, chunk_words=50))
    assert [d for chunk in chunks for d in chunk] == documents
    assert all(len(c) <= 16 for c in chunks) and len(chunks) > LINES // 16


# --- failures: picklable loaders of predictors that fail inside the worker ----------------------------


class _Failing:
    """Wraps a Predictor; a document containing ``word`` raises, or kills the worker process."""

    def __init__(self, predictor: Predictor, word: str, how: str) -> None:
        self.predictor, self.word, self.how = predictor, word, how

    def predict_documents(self, documents: Any, **kwargs: Any) -> Any:
        documents = list(documents)
        if any(self.word in d.words for d in documents):
            if self.how == "die":
                os._exit(3)
            raise RuntimeError("boom\nsecond line")
        return self.predictor.predict_documents(documents, **kwargs)


def _failing_predictor(model_dir: str, word: str, how: str, **kwargs: Any) -> _Failing:
    return _Failing(Predictor.from_pretrained(model_dir, **kwargs), word, how)


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_failing_worker_leaves_no_output_and_one_error_line(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    import nerfocal.predict_options as options

    monkeypatch.setattr(
        options,
        "predictor_loader",
        lambda args, **kw: functools.partial(_failing_predictor, str(args.model), "BOOM", how, device="cpu"),
    )
    texts = _texts()
    texts[200] = "Paris BOOM"
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _predict(model_dir, source, out, "--num-workers", "2") == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no temporary file either
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("nerfocal predict: error: documents ")
    if how == "raise":  # the chunk of document 201
        assert (
            err
            == "nerfocal predict: error: documents 193-208: a worker failed: RuntimeError: boom second line"
        )
    else:  # every chunk in flight is lost with the process
        assert "not written: a worker process died" in err

    out.write_text("kept\n", encoding="utf-8")  # an existing output stays as it was
    assert _predict(model_dir, source, out, "--num-workers", "2") == 1
    assert out.read_text(encoding="utf-8") == "kept\n"


def test_a_bad_model_directory_is_the_usual_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Paris\n", encoding="utf-8")
    missing = tmp_path / "no-model"
    assert _predict(missing, source, tmp_path / "out.jsonl", "--num-workers", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(missing) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_num_workers_below_one_is_an_error(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Paris\n", encoding="utf-8")
    assert _predict(model_dir, source, tmp_path / "out.jsonl", "--num-workers", workers) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"nerfocal predict: error: --num-workers: expected a positive number of processes, got {workers}"
    )
    assert not (tmp_path / "out.jsonl").exists()
