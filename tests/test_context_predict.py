"""Document context end to end: a tiny run trained with context saves its context_size; predict,
evaluate, the Python API and the ONNX backend read the same context as the training evaluation did,
from the input's documents, never from another document nor from any gold tag (docs/context.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fixtures import SAMPLE

from nerfocal.cli import evaluate as cli_evaluate
from nerfocal.cli import main as cli_main
from nerfocal.cli import predict as cli_predict
from nerfocal.conll import read_conll
from nerfocal.documents import read_documents
from nerfocal.predict import Document, Predictor

CONTEXT = 12


def _write_documents(path: Path, sentences: list[Any], per_document: int) -> Path:
    """The sentences as CoNLL, a -DOCSTART- line before every ``per_document`` of them."""
    lines = []
    for i, s in enumerate(sentences):
        if i % per_document == 0:
            lines.append("-DOCSTART- O\n\n")
        lines.append("".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags or [], strict=True)) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _args(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    from nerfocal.cli.train import main

    tmp = tmp_path_factory.mktemp("context_run")
    train = _write_documents(tmp / "train.conll", list(read_conll(SAMPLE / "train.conll"))[:48], 4)
    dev = _write_documents(tmp / "dev.conll", list(read_conll(SAMPLE / "dev.conll"))[:30], 5)
    out = tmp / "run"
    argv = ["--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(train)]
    argv += ["--validation_file", str(dev), "--output_dir", str(out), "--max_steps", "4"]
    argv += ["--max_length", "64", "--context_size", str(CONTEXT), "--context_dropout", "0.5"]
    argv += ["--use_cpu", "true", "--disable_tqdm", "true", "--learning_rate", "5e-3", "--seed", "3"]
    argv += ["--unknown_labels", "O"]
    assert main(argv) == 0
    return out


def _dev(run: Path) -> Path:
    return run.parent / "dev.conll"


def test_the_run_saves_its_context_size_and_evaluated_dev_with_context(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["nerfocal_context_size"] == CONTEXT
    saved = yaml.safe_load((run / "nerfocal_config.yaml").read_text())
    assert (saved["context_size"], saved["context_dropout"]) == (CONTEXT, 0.5)  # flat: YAML keys = flags
    stats = json.loads((run / "eval_results.json").read_text())["data"]
    assert stats["validation"]["documents"] == 6 and stats["validation"]["context_sentences"] == 30
    assert stats["train"]["documents"] == 12 and stats["train"]["context_sentences"] == 48


def test_predict_and_evaluate_read_the_context_the_training_evaluation_read(
    run: Path, tmp_path: Path
) -> None:
    """The run's own dev predictions (Trainer.predict on the encoded windows) are the Predictor's
    argmax tags on the same file with its documents, and `nerfocal evaluate` gives its scores."""
    trained = [
        json.loads(line)["pred"] for line in (run / "predictions_validation.jsonl").read_text().splitlines()
    ]
    # context_pack 0 (the default): each sentence in a window of its own, as the training evaluation reads it
    predictor = Predictor.from_pretrained(run, device="cpu", decode="argmax")
    assert predictor.context_size == CONTEXT  # the saved default
    documents = read_documents(str(_dev(run)), "conll", "utf-8", None)
    assert [p.tags for p in predictor.predict_documents(documents)] == trained
    alone = Predictor.from_pretrained(run, device="cpu", decode="argmax", context_size=0)
    no_context = alone.predict_documents(read_documents(str(_dev(run)), "conll", "utf-8", None))
    with_context = predictor.predict_documents(read_documents(str(_dev(run)), "conll", "utf-8", None))
    assert [p.scores for p in no_context] != [p.scores for p in with_context]  # the context is read

    out = tmp_path / "eval.json"
    argv = ["--model", str(run), "--data", str(_dev(run)), "--output", str(out), "--device", "cpu", "--quiet"]
    assert cli_evaluate.run(_args(cli_evaluate, argv)) == 0
    ours = json.loads(out.read_text())
    results = json.loads((run / "eval_results.json").read_text())["validation"]
    assert ours["context_size"] == CONTEXT
    for key in ("precision", "recall", "f1", "macro_f1"):
        assert ours[key] == pytest.approx(results[key], abs=1e-9), key


def test_context_size_flag_overrides_the_saved_one_and_bad_values_are_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    argv = ["--model", str(run), "--data", str(_dev(run)), "--output", str(out), "--device", "cpu", "--quiet"]
    assert cli_evaluate.run(_args(cli_evaluate, [*argv, "--context-size", "0"])) == 0
    assert json.loads(out.read_text())["context_size"] == 0
    assert cli_evaluate.run(_args(cli_evaluate, [*argv, "--context-pack", "5"])) == 0
    assert json.loads(out.read_text())["context_pack"] == 5
    with pytest.raises(SystemExit):
        cli_main(["predict", "--model", str(run), "--context-pack", "x"])
    assert "argument --context-pack/--context_pack: expected an integer >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["predict", "--model", str(run), "--context-size", "-1"])
    assert "argument --context-size/--context_size: expected an integer >= 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^context_size: expected an integer >= 0"):
        Predictor.from_pretrained(run, device="cpu", context_size=-2)
    source = tmp_path / "in.conll"
    source.write_text("Paris O\n", encoding="utf-8")
    code = cli_main(["predict", "--model", str(run), "--input", str(source), "--document-boundary", "re:("])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(
        "nerfocal predict: error: --document-boundary: expected a valid regular"
    )


DOCUMENTS = [
    ["The minister visited Toronto .", "Police in Valencia said two people were injured ."],
    ["Zürich café naïve"],
    ["a of the", "Paulo São", "the a"],
]


def _spy_windows(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The word lists the predictor puts in its windows (each with its context), as they are made."""
    import nerfocal.predict as predict_module

    seen: list[list[str]] = []
    original = predict_module.tokenize_windows

    def spy(tokenizer: Any, lists: list[list[str]], *args: Any) -> Any:
        seen.extend(lists)
        return original(tokenizer, lists, *args)

    monkeypatch.setattr(predict_module, "tokenize_windows", spy)
    return seen


def test_context_comes_only_from_the_same_document(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_windows(monkeypatch)
    predictor = Predictor.from_pretrained(run, device="cpu")
    documents = DOCUMENTS
    entities = predictor.predict_sentences(documents)
    assert [len(d) for d in entities] == [2, 1, 3]
    vocab = [{w for text in document for w in text.split()} for document in documents]
    sentences = [(d, text.split()) for d, document in enumerate(documents) for text in document]
    by_words = {" ".join(words): d for d, words in sentences}
    for words in seen:
        own = next(d for key, d in by_words.items() if key in " ".join(words))
        assert set(words) <= vocab[own]
    assert ["Zürich", "café", "naïve"] in seen  # a document of one sentence gets no context
    # and exactly the rule of nerfocal.context, with the predictor's sub-word counts and window budget
    from nerfocal.context import context_windows

    tokenizer = predictor.tokenizer
    units = [
        (str(d), w, [len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in w])
        for d, w in sentences
    ]
    budget = predictor.max_length - tokenizer.num_special_tokens_to_add(pair=False)
    expected = [
        left + w + right
        for (_, w, _), (left, right) in zip(units, list(context_windows(units, CONTEXT, budget)), strict=True)
    ]
    # identical windows (here the sentences of the last document, each reading all of it) run once
    assert list(map(tuple, seen)) == list(dict.fromkeys(map(tuple, expected)))
    assert len(seen[0]) > 5 and seen[0][:5] == sentences[0][1]  # the first sentence: right context only


def test_packed_windows_hold_runs_of_one_documents_sentences_with_the_outer_context(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packing: consecutive sentences of a document share a window (with the left context
    of the first and the right context of the last), never across documents, never past max_length."""
    from nerfocal.context import context_windows, pack_contexts

    seen = _spy_windows(monkeypatch)
    assert Predictor.from_pretrained(run, device="cpu").context_pack == 0  # the default: no packing
    predictor = Predictor.from_pretrained(run, device="cpu", context_pack=1000)
    tokenizer = predictor.tokenizer
    budget = predictor.max_length - tokenizer.num_special_tokens_to_add(pair=False)
    assert predictor.context_pack == budget - 2 * CONTEXT  # capped at what the window leaves
    entities = predictor.predict_sentences(DOCUMENTS)
    assert [len(d) for d in entities] == [2, 1, 3]
    sentences = [(d, text.split()) for d, document in enumerate(DOCUMENTS) for text in document]
    assert len(seen) == 3 < len(sentences)  # one window per document here
    units = [
        (str(d), w, [len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in w])
        for d, w in sentences
    ]
    contexts = list(context_windows(units, CONTEXT, budget))
    items = [(key, words, sum(n), c) for (key, words, n), c in zip(units, contexts, strict=True)]
    packed = list(pack_contexts(items, predictor.context_pack))
    expected = list(dict.fromkeys(tuple(c[0] + w + c[1]) for (_, w, _), c in zip(units, packed, strict=True)))
    assert [len(c[0]) for c in packed] == [0, 5, 0, 0, 3, 5]  # each sentence: the run's words before it
    assert sorted(map(tuple, seen)) == sorted(map(tuple, expected))
    vocab = [{w for text in document for w in text.split()} for document in DOCUMENTS]
    assert all(any(set(words) <= v for v in vocab) for words in seen)  # one document's words only
    assert all(len(tokenizer(w, is_split_into_words=True)["input_ids"]) <= predictor.max_length for w in seen)


def test_packing_changes_nothing_where_each_sentences_context_is_its_whole_document(run: Path) -> None:
    """A document shorter than the context: each sentence alone already reads the whole document, so
    the packed window is the same sequence and the tags and scores are the same."""
    short = [["a of the", "Paulo São", "the a"], ["Zürich café naïve"], ["Toronto .", "in Valencia"]]
    exact = Predictor.from_pretrained(run, device="cpu", context_pack=0)
    packed = Predictor.from_pretrained(run, device="cpu", context_pack=64)
    documents = [
        Document(text.split(), document_id=str(d)) for d, document in enumerate(short) for text in document
    ]
    ours = list(packed.predict_documents(documents))
    theirs = list(exact.predict_documents(documents))
    assert [p.tags for p in ours] == [p.tags for p in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    with pytest.raises(ValueError, match=r"^context_pack: expected an integer >= 0"):
        Predictor.from_pretrained(run, device="cpu", context_pack="64")


def test_predictions_do_not_depend_on_the_neighbours_gold_tags(run: Path, tmp_path: Path) -> None:
    text = _dev(run).read_text(encoding="utf-8")
    other = "".join(
        line if not line.strip() or line.startswith("-DOCSTART-") else line.split()[0] + " B-PER\n"
        for line in text.splitlines(keepends=True)
    )
    outputs = []
    for name, body in (("gold.conll", text), ("other.conll", other)):
        source, out = tmp_path / name, tmp_path / f"{name}.out"
        source.write_text(body, encoding="utf-8")
        argv = ["--model", str(run), "--input", str(source), "--input-format", "conll", "--quiet"]
        argv += ["--output", str(out), "--output-format", "conll", "--device", "cpu"]
        assert cli_predict.run(_args(cli_predict, argv)) == 0
        outputs.append([line.split()[::2] for line in out.read_text().splitlines() if line])  # token, pred
    assert outputs[0] == outputs[1]


def test_context_streams_across_chunks(run: Path) -> None:
    def predict(**kwargs: Any) -> list[Any]:
        predictor = Predictor.from_pretrained(run, device="cpu", **kwargs)
        return list(predictor.predict_documents(read_documents(str(_dev(run)), "conll", "utf-8", None)))

    small, large = predict(chunk_size=1), predict(chunk_size=1000)
    assert [p.tags for p in small] == [p.tags for p in large]
    for a, b in zip(small, large, strict=True):
        assert torch.allclose(torch.tensor(a.scores), torch.tensor(b.scores), atol=1e-5)


@pytest.mark.parametrize("pack", ["0", "40"])
def test_workers_cut_documents_anywhere_and_write_what_one_process_writes(
    run: Path, tmp_path: Path, pack: str
) -> None:
    """Chunks of 2 sentences cut every 5-sentence dev document; the context is attached before the cut
    (in the parent), so two workers write the same bytes as one process, and a context model run
    without context would not (the check can fail)."""
    outputs = {}
    for name, extra in (("one", []), ("two", ["--num-workers", "2"]), ("bare", ["--context-size", "0"])):
        out = tmp_path / f"{name}.jsonl"
        argv = ["predict", "--model", str(run), "--input", str(_dev(run)), "--input-format", "conll"]
        argv += ["--output", str(out), "--quiet", "--device", "cpu", "--chunk-size", "2"]
        argv += ["--o-bias", "4"]  # entities, with their scores, from a 4-step model
        assert cli_main([*argv, "--context-pack", pack, *extra]) == 0
        outputs[name] = out.read_bytes()
    assert b'"score"' in outputs["one"]
    assert outputs["one"] == outputs["two"]
    assert outputs["one"] != outputs["bare"]


@pytest.mark.slow
def test_ranks_cut_documents_anywhere_and_write_what_one_process_writes(run: Path, tmp_path: Path) -> None:
    """Two launched ranks split 30 sentences in documents of 4 at sentence 15, inside a document whose
    first 3 sentences are rank 0's; rank 1 reads them as context, so the output is one process's."""
    from test_predict_ranks import _launch

    source = _write_documents(tmp_path / "dev4.conll", list(read_conll(_dev(run))), 4)
    argv = ["predict", "--model", str(run), "--input", str(source), "--input-format", "conll"]
    argv += ["--quiet", "--chunk-size", "3", "--o-bias", "4", "--output"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert cli_main([*argv, str(one), "--device", "cpu"]) == 0
    done = _launch("-m", "nerfocal.cli", *argv, str(two), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert b'"score"' in one.read_bytes() and one.read_bytes() == two.read_bytes()


@pytest.mark.parametrize(("size", "per_document"), [(2, 4), (3, 4), (4, 7), (3, 1)])
def test_each_rank_reads_its_shard_with_the_context_of_the_whole_input(
    run: Path, tmp_path: Path, size: int, per_document: int
) -> None:
    from nerfocal.predict_ranks import World, shard_chunks, shard_context

    source = _write_documents(tmp_path / "dev.conll", list(read_conll(_dev(run))), per_document)
    docs = list(read_documents(str(source), "conll", "utf-8", None))
    if per_document == 1:  # every sentence its own document
        docs = [dataclasses.replace(d, document_id=None) for d in docs]
    reader = Predictor.from_pretrained(run, device="cpu", context_pack=40).context_reader()
    assert reader is not None
    one = list(reader(docs))
    shards = []
    for rank in range(size):
        world = World(rank=rank, size=size, local_rank=rank)
        stream = shard_context(iter(docs), reader, world, len(docs))
        shards += [d for chunk in shard_chunks(stream, len(docs), world, 3, 10_000) for d in chunk]
    assert shards == one
    assert any(d.context for d in one) == (per_document > 1)


def test_a_rank_ends_quietly_at_a_bad_line_past_its_shard_only() -> None:
    from nerfocal.predict_ranks import _quiet_after

    def documents():  # type: ignore[no-untyped-def]
        yield from (Document([f"w{i}"]) for i in range(5))
        raise ValueError("in.conll:6: bad line")

    assert len(list(_quiet_after(documents(), 3))) == 5
    with pytest.raises(ValueError, match=r"in\.conll:6"):
        list(_quiet_after(documents(), 6))


def test_a_rank_reads_its_shard_though_the_reader_looks_ahead_into_a_bad_line(run: Path) -> None:
    """The reader reads a block ahead: rank 0 of 2 meets the next rank's bad line and still gives its
    shard, as one process reads it; the last rank, whose line it is, raises it."""
    from nerfocal.predict_ranks import World, shard_chunks, shard_context

    sentences = list(read_conll(_dev(run)))[:8]
    docs = [Document(s.tokens, document_id="1") for s in sentences]

    def broken():  # type: ignore[no-untyped-def]
        yield from docs
        raise ValueError("in.conll:99: bad line")

    reader = Predictor.from_pretrained(run, device="cpu").context_reader()
    assert reader is not None
    whole = list(reader(docs))
    first = World(rank=0, size=2, local_rank=0)
    stream = shard_context(broken(), reader, first, len(docs))
    shard = [d for chunk in shard_chunks(stream, len(docs), first, 2, 10_000) for d in chunk]
    assert shard == whole[: len(shard)] and len(shard) >= 4 and shard[-1].context
    last = World(rank=1, size=2, local_rank=1)
    with pytest.raises(ValueError, match=r"in\.conll:99"):
        list(shard_chunks(shard_context(broken(), reader, last, len(docs)), len(docs), last, 2, 10_000))


def test_a_tokenizer_the_main_process_cannot_load_is_a_one_line_error() -> None:
    from nerfocal.predict_workers import _load_reader

    assert _load_reader(None) is None
    with pytest.raises(ValueError, match=r"^--num-workers: the model's tokenizer cannot be loaded") as err:
        _load_reader(b"not a pickle")
    assert "\n" not in str(err.value)


def test_the_context_reader_counts_sub_words_as_the_tokenizer_does(run: Path) -> None:
    from nerfocal.context_reader import ContextReader

    predictor = Predictor.from_pretrained(run, device="cpu")
    tokenizer = predictor.tokenizer
    words = [w for s in read_conll(_dev(run)) for w in s.tokens]
    words += ["\u200b", "\ufeff", "naïve", "Zürich", "🙂", "x" * 300, "co-operation", ""]
    expected = [len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]]
    assert ContextReader(tokenizer, 62, CONTEXT).counter()(words) == expected
    tokenizer.backend_tokenizer.enable_truncation(4)  # the copy it counts with has no truncation
    assert ContextReader(tokenizer, 62, CONTEXT).counter()(words) == expected
    tokenizer.backend_tokenizer.no_truncation()


def test_context_reader_pickles_and_reads_as_the_predictor(run: Path) -> None:
    import pickle

    predictor = Predictor.from_pretrained(run, device="cpu")
    reader = pickle.loads(pickle.dumps(predictor.context_reader()))  # noqa: TID251 (what spawn does)
    docs = list(read_documents(str(_dev(run)), "conll", "utf-8", None))
    assert list(reader(docs)) == list(predictor.with_context(docs))
    assert any(d.context for d in reader(docs))
    assert Predictor.from_pretrained(run, device="cpu", context_size=0).context_reader() is None


def test_text_input_blank_lines_separate_documents(run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    lines = [
        "The minister visited Toronto .",
        "Police in Valencia said two people were injured .",
        "",
        "Zürich",
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = [d.document_id for d in read_documents(str(source), "text", "utf-8", None)]
    assert ids == ["1", "1", None, "2"]
    alone = read_documents(str(source), "text", "utf-8", None, text_documents="lines")
    assert [d.document_id for d in alone] == [None] * 4
    out = tmp_path / "out.jsonl"
    argv = ["--model", str(run), "--input", str(source), "--output", str(out), "--quiet", "--device", "cpu"]
    assert cli_predict.run(_args(cli_predict, argv)) == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == lines  # one record a line


def test_jsonl_input_groups_by_document_id_and_rejects_bad_ones(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Paris", "document_id": 1}\n{"text": "Rome", "document_id": {"a": 1}}\n')
    with pytest.raises(ValueError, match=r"in.jsonl:2: expected 'document_id' to be a string or an integer"):
        list(read_documents(str(source), "jsonl", "utf-8", None))
    code = cli_main(
        ["predict", "--model", str(run), "--input", str(source), "--input-format", "jsonl", "--quiet"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "in.jsonl:2: expected 'document_id'" in err
    source.write_text(
        '{"text": "Paris", "document_id": 1}\n{"tokens": ["Rome"], "document_id": 1}\n{"text": "x"}\n'
    )
    assert [d.document_id for d in read_documents(str(source), "jsonl", "utf-8", None)] == ["1", "1", None]


def test_the_onnx_backend_reads_the_same_context(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from nerfocal.export import export_model

    exported = tmp_path / "onnx"
    export_model(run, exported)
    onnx = Predictor.from_pretrained(exported, decode="argmax")
    torch_predictor = Predictor.from_pretrained(run, device="cpu", decode="argmax")
    assert onnx.context_size == CONTEXT
    documents = list(read_documents(str(_dev(run)), "conll", "utf-8", None))
    assert [p.tags for p in onnx.predict_documents(documents)] == [
        p.tags for p in torch_predictor.predict_documents(documents)
    ]


def test_serve_reads_a_requests_texts_as_one_document_when_asked(run: Path) -> None:
    """POST /predict with "document": true: the texts are one document's sentences, read with each
    other's context (what predict_sentences gives); without it each text is alone, as before."""
    from fastapi.testclient import TestClient

    from nerfocal.records import entity_records
    from nerfocal.serve import create_app

    predictor = Predictor.from_pretrained(run, device="cpu")
    texts = ["The minister visited Toronto .", "Police in Valencia said two people were injured ."]
    with TestClient(create_app(predictor)) as client:
        together = client.post("/predict", json={"texts": texts, "document": True})
        alone = client.post("/predict", json={"texts": texts})
        bad = client.post("/predict", json={"texts": texts, "document": "yes"})
        info = client.get("/info").json()
    assert together.status_code == alone.status_code == 200
    contexts = Predictor.from_pretrained(run, device="cpu")
    docs = [dataclasses.replace(contexts.document(t), document_id="d") for t in texts]
    expected = [entity_records(p) for p in contexts.predict_documents(docs)]
    assert [p["entities"] for p in together.json()["predictions"]] == expected
    single = [entity_records(p) for p in contexts.predict_documents([contexts.document(t) for t in texts])]
    assert [p["entities"] for p in alone.json()["predictions"]] == single
    with_context = [p.scores for p in contexts.predict_documents(docs)]
    assert with_context != [
        p.scores for p in contexts.predict_documents([contexts.document(t) for t in texts])
    ]
    assert bad.status_code == 422 and "document" in bad.json()["error"]
    assert info["context_size"] == CONTEXT
