"""Document context in the data layer and the training encoding: documents read from every format, the
context cut at document edges and never labelled, the sentence never shortened for it, the loss and
counts unchanged by it, context dropout seeded per epoch (docs/context.md)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fixtures import LABELS, build_tokenizer, make_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfocal.config import DataConfig, parse_config
from nerfocal.conll import DataFormatError, Sentence, read_conll, read_jsonl
from nerfocal.context import _split_room, context_windows
from nerfocal.context_training import ContextDropoutCallback, ContextDropoutDataset, training_dataset
from nerfocal.encode import encode_eval_windows, encode_sentences
from nerfocal.labels import IGNORE_INDEX
from nerfocal.training import feature_label_counts

LABEL2ID = {label: i for i, label in enumerate(LABELS)}

# three documents; the words of each document are their own, so a token says which document it is from
DOC_A = [
    (["The", "minister", "visited", "Toronto", "."], ["O", "O", "O", "B-LOC", "O"]),
    (
        ["Police", "in", "Valencia", "said", "two", "people", "were", "injured", "."],
        ["O", "O", "B-LOC"] + ["O"] * 6,
    ),
    (["The", "Film", "Days", "drew", "thousands", "."], ["O", "B-EVENT", "I-EVENT", "O", "O", "O"]),
]
DOC_B = [(["Zürich", "café", "naïve"], ["B-LOC", "O", "O"])]
DOC_C = [
    (["Paulo", "São"], ["B-PER", "O"]),
    (["a", "of", "the"], ["O", "O", "O"]),
]


def _sentences(*documents: list[tuple[list[str], list[str]]], ids: bool = True) -> list[Sentence]:
    return [
        Sentence(list(words), list(tags), document=str(d) if ids else None)
        for d, document in enumerate(documents)
        for words, tags in document
    ]


def _conll(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- documents in the readers ------------------------------------------------------------------------


def test_conll_documents_follow_docstart_lines_and_an_unmarked_file_is_one_document(tmp_path: Path) -> None:
    marked = _conll(tmp_path / "m.conll", "-DOCSTART- O\n\nA O\n\nB O\n-DOCSTART- O\n\nC O\n\n-DOCSTART- O\n")
    sentences = list(read_conll(marked))
    assert [s.tokens for s in sentences] == [["A"], ["B"], ["C"]]
    assert [s.document for s in sentences] == ["1", "1", "2"]
    assert [s.line for s in sentences] == [3, 5, 8]  # the i-th token is still on line + i
    plain = _conll(tmp_path / "p.conll", "A O\n\nB O\n\nC O\n")
    assert [s.document for s in read_conll(plain)] == ["1", "1", "1"]
    assert [s.document for s in read_conll(marked, document_boundary="sentence")] == [None, None, None]


def test_document_boundary_marks_documents_by_marker_or_regex(tmp_path: Path) -> None:
    marker = _conll(tmp_path / "a.conll", "A O\n\n#doc\nB O\n\nC O\n#doc\n#doc\nD O\n")
    assert [s.document for s in read_conll(marker, document_boundary="#doc")] == ["1", "2", "2", "3"]
    regex = _conll(tmp_path / "b.conll", "# newdoc id = x\nA O\n\n# newdoc id = y\nB O\n\nC O\n")
    sentences = list(read_conll(regex, document_boundary="re:^# newdoc"))
    assert [s.document for s in sentences] == ["1", "2", "2"]
    assert [s.tokens for s in sentences] == [["A"], ["B"], ["C"]]


def test_bad_document_boundary_and_context_options_are_one_line_errors_naming_the_option(
    tmp_path: Path,
) -> None:
    cases = [
        ({"document_boundary": "re:("}, "document_boundary: expected a valid regular expression"),
        ({"document_boundary": "two words"}, "document_boundary: expected 'sentence', 're:PATTERN'"),
        ({"context_size": -1}, "context_size: expected an integer >= 0"),
        ({"context_dropout": 1.5}, "context_dropout: expected a number in [0, 1], got 1.5"),
        ({"context_dropout": -0.1}, "context_dropout: expected a number in [0, 1]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as err:
            DataConfig(**kwargs)
        assert message in str(err.value) and "\n" not in str(err.value), kwargs
    yaml_file = tmp_path / "cfg.yaml"
    yaml_file.write_text("context_size: -3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^invalid DataConfig: context_size: expected an integer >= 0"):
        parse_config([str(yaml_file)])
    with pytest.raises(ValueError, match=r"context_dropout: expected a number in \[0, 1\], got 2.0"):
        parse_config(["--context_dropout", "2"])
    data_cfg = parse_config(["--context_size", "64", "--context_dropout", "0.3"])[1]
    assert (data_cfg.context_size, data_cfg.context_dropout) == (64, 0.3)


def test_jsonl_document_ids_and_their_errors_name_the_file_and_line(tmp_path: Path) -> None:
    def records(*items: dict[str, Any]) -> Path:
        path = tmp_path / "data.jsonl"
        path.write_text("".join(json.dumps({"tokens": ["a"], "tags": ["O"], **x}) + "\n" for x in items))
        return path

    good = records({"document_id": 7}, {"document_id": 7, "sentence_id": 3}, {}, {"document_id": "x"})
    assert [s.document for s in read_jsonl(good)] == ["7", "7", None, "x"]
    bad = [
        ([{"document_id": [1]}], ":1: expected 'document_id' to be a string or an integer, got list"),
        ([{}, {"document_id": True}], ":2: expected 'document_id' to be a string or an integer, got bool"),
        ([{"document_id": 1, "sentence_id": "2"}], ":1: expected 'sentence_id' to be an integer, got str"),
        ([{"document_id": "a"}, {"document_id": "b"}, {"document_id": "a"}], ":3: document_id 'a' again"),
        (
            [{"document_id": "a", "sentence_id": 2}, {"document_id": "a", "sentence_id": 2}],
            ":2: sentence_id 2 after 2 in document 'a'; expected increasing sentence_id",
        ),
    ]
    for items, message in bad:
        path = records(*items)
        with pytest.raises(DataFormatError) as err:
            list(read_jsonl(path))
        assert str(err.value).startswith(f"{path}:") and message in str(err.value), items


def test_hf_datasets_map_document_id_columns_and_docstart_rows(tmp_path: Path) -> None:
    import datasets

    from nerfocal.data import read_hf_dataset

    tag = datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER"]))
    tokens = [["-DOCSTART-"], ["Ann"], ["met"], ["-DOCSTART-"], ["Bo"]]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": tag})
    marked = datasets.Dataset.from_dict(
        {"tokens": tokens, "ner_tags": [[0], [1], [0], [0], [1]]}, features=features
    )
    datasets.DatasetDict({"train": marked}).save_to_disk(str(tmp_path / "marked"))
    train = read_hf_dataset(None, None, str(tmp_path / "marked"))["train"]
    assert [(s.tokens, s.document) for s in train] == [(["Ann"], "1"), (["met"], "1"), (["Bo"], "2")]

    with_ids = datasets.Dataset.from_dict({"tokens": [["Ann"], ["met"], ["Bo"]], "document_id": [4, 4, 5]})
    datasets.DatasetDict({"train": with_ids.add_column("tags", [["B-PER"], ["O"], ["B-PER"]])}).save_to_disk(
        str(tmp_path / "ids")
    )
    assert [s.document for s in read_hf_dataset(None, None, str(tmp_path / "ids"))["train"]] == [
        "4",
        "4",
        "5",
    ]
    plain = datasets.Dataset.from_dict({"tokens": [["Ann"], ["Bo"]], "tags": [["B-PER"], ["B-PER"]]})
    datasets.DatasetDict({"train": plain}).save_to_disk(str(tmp_path / "plain"))
    assert [s.document for s in read_hf_dataset(None, None, str(tmp_path / "plain"))["train"]] == [None, None]


# --- choosing the context ----------------------------------------------------------------------------


def _reference(units: list[tuple[Any, list[str], list[int]]], size: int, budget: int) -> list[Any]:
    """The context rule written out plainly: whole documents in memory, walk outwards from each sentence."""
    out = []
    for i, (key, words, lengths) in enumerate(units):
        room = budget - sum(lengths)
        if key is None or room <= 0 or not words or size <= 0:
            out.append(([], []))
            continue
        first, last = i, i
        while first > 0 and units[first - 1][0] == key:
            first -= 1
        while last + 1 < len(units) and units[last + 1][0] == key:
            last += 1
        before_words = [w for u in units[first:i] for w in u[1]]
        before = [n for u in units[first:i] for n in u[2]]
        after_words = [w for u in units[i + 1 : last + 1] for w in u[1]]
        after = [n for u in units[i + 1 : last + 1] for n in u[2]]
        left, right = _split_room(room, min(size, sum(before)), min(size, sum(after)))
        start, total = len(before), 0
        while start > 0 and total + before[start - 1] <= left:
            start -= 1
            total += before[start]
        end, total = 0, 0
        while end < len(after) and total + after[end] <= right:
            total += after[end]
            end += 1
        while start < len(before) and before[start] == 0:
            start += 1
        while end > 0 and after[end - 1] == 0:
            end -= 1
        out.append((before_words[start:], after_words[:end]))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), st.lists(st.integers(0, 4), max_size=6)), max_size=12
    ),
    st.integers(0, 10),
    st.integers(1, 25),
)
def test_streamed_context_equals_the_plain_rule(
    shape: list[tuple[Any, list[int]]], size: int, budget: int
) -> None:
    units, count = [], 0
    for key, lengths in shape:
        units.append((key, [f"w{count + j}" for j in range(len(lengths))], lengths))
        count += len(lengths)
    assert list(context_windows(iter(units), size, budget)) == _reference(units, size, budget)


def test_context_takes_whole_words_up_to_the_size_and_shares_the_room() -> None:
    units = [("d", ["a", "b"], [2, 2]), ("d", ["s"], [1]), ("d", ["c", "d"], [2, 2])]
    assert list(context_windows(units, 3, 100))[1] == (["b"], ["c"])  # 2 of 3 sub-words: whole words
    assert list(context_windows(units, 4, 100))[1] == (["a", "b"], ["c", "d"])
    assert list(context_windows(units, 4, 5))[1] == (["b"], ["c"])  # room 4: two each
    assert list(context_windows(units, 4, 1))[1] == ([], [])  # the sentence fills the budget
    assert (
        _split_room(10, 8, 3) == (7, 3) and _split_room(10, 3, 8) == (3, 7) and _split_room(9, 8, 8) == (5, 4)
    )


# --- encoding ----------------------------------------------------------------------------------------


def _labels_only_at_first_subwords(feature: dict[str, Any], window: Any, tags: list[str]) -> None:
    labelled = [j for j, y in enumerate(feature["labels"]) if y != IGNORE_INDEX]
    assert labelled == window.first_subwords
    assert [feature["labels"][j] for j in labelled] == [
        LABEL2ID[t] for t in tags[window.word_offset : window.word_offset + len(labelled)]
    ]


def test_context_is_cut_at_document_edges_and_never_labelled(tiny_tokenizer: Any) -> None:
    sentences = _sentences(DOC_A, DOC_B, DOC_C)
    plain, _, _ = encode_sentences(sentences, tiny_tokenizer, LABEL2ID, max_length=64)
    for encode in (encode_sentences, encode_eval_windows):
        features, windows, stats = encode(sentences, tiny_tokenizer, LABEL2ID, max_length=64, context_size=8)
        assert stats.documents == 3 and stats.context_sentences == 5  # DOC_B is one sentence: no context
        vocab: list[set[int]] = []
        for document in (DOC_A, DOC_B, DOC_C):
            words = [w for ws, _ in document for w in ws]
            vocab.append(
                set(tiny_tokenizer(words, add_special_tokens=False, is_split_into_words=True)["input_ids"])
            )
        specials = set(tiny_tokenizer.all_special_ids)
        for k, (feature, window) in enumerate(zip(features, windows, strict=True)):
            sentence = sentences[window.sentence_index]
            _labels_only_at_first_subwords(feature, window, sentence.tags or [])
            own = vocab[int(sentence.document or 0)]
            assert set(feature["input_ids"]) - specials <= own, (k, "context from another document")
        assert features[3]["input_ids"] == plain[3]["input_ids"]  # a document of one sentence
        assert len(features[1]["input_ids"]) > len(plain[1]["input_ids"])  # a middle sentence: both sides


def test_the_sentence_is_never_shortened_for_context(tiny_tokenizer: Any) -> None:
    long = (["Police", "in", "Valencia", "said", "two", "people", "were", "injured"] * 3, ["O"] * 24)
    sentences = _sentences([DOC_A[0], long, DOC_A[2], DOC_A[1]])  # 13, 40+, 17 and 14 sub-words
    plain, plain_windows, _ = encode_sentences(sentences, tiny_tokenizer, LABEL2ID, max_length=20)
    features, windows, stats = encode_sentences(
        sentences, tiny_tokenizer, LABEL2ID, max_length=20, context_size=64
    )
    assert stats.split_sentences == 1 and stats.context_sentences >= 2
    for feature, window, bare in zip(features, windows, plain, strict=True):
        assert len(feature["input_ids"]) <= 20  # the context gets only the room the sentence leaves
        assert [y for y in feature["labels"] if y != IGNORE_INDEX] == [
            y for y in bare["labels"] if y != IGNORE_INDEX
        ]
        if window.sentence_index == 1:  # split into windows: no context
            assert feature == bare
    assert [(w.sentence_index, w.word_offset) for w in windows] == [
        (w.sentence_index, w.word_offset) for w in plain_windows
    ]


def test_sentences_without_documents_get_no_context(tiny_tokenizer: Any) -> None:
    """The WNUT-17 control: every sentence alone (document_boundary sentence, JSONL without ids)."""
    sentences = _sentences(DOC_A, DOC_C, ids=False)
    for encode in (encode_sentences, encode_eval_windows):
        assert encode(sentences, tiny_tokenizer, LABEL2ID, context_size=64) == encode(
            sentences, tiny_tokenizer, LABEL2ID, context_size=0
        )


def test_neighbours_gold_tags_never_reach_a_sentence(tiny_tokenizer: Any) -> None:
    first = _sentences(DOC_A)
    second = _sentences([(words, ["B-PER"] * len(words)) for words, _ in DOC_A])
    second[1].tags = list(first[1].tags or [])
    for encode in (encode_sentences, encode_eval_windows):
        a, _, _ = encode(first, tiny_tokenizer, LABEL2ID, context_size=16)
        b, _, _ = encode(second, tiny_tokenizer, LABEL2ID, context_size=16)
        assert a[1] == b[1]  # same inputs and same labels: the neighbours' tags are not in it


# --- the loss and the counts see only the labelled positions ---------------------------------------


def _tokenwise_model(vocab_size: int) -> Any:
    """A BERT without layers and without position embeddings: each logit depends on its token only, so
    the outputs at the labelled positions do not change when context is put around them."""
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=16, num_hidden_layers=0, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=64, num_labels=len(LABELS),
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.bert.embeddings.position_embeddings.weight.zero_()
        model.classifier.weight.mul_(5.0)
    return model


@pytest.mark.parametrize("normalization", ["dataset", "step"])
@pytest.mark.parametrize("loss", ["focal", "ce"])
def test_loss_and_counts_are_unchanged_by_context(
    tmp_path: Path, tiny_tokenizer: Any, loss: str, normalization: str
) -> None:
    from transformers import DataCollatorForTokenClassification

    from nerfocal.losses import resolve_alpha
    from nerfocal.prior_init import init_classifier_bias

    sentences = _sentences(DOC_A, DOC_B, DOC_C)
    bare, _, _ = encode_sentences(sentences, tiny_tokenizer, LABEL2ID, max_length=64)
    context, _, stats = encode_sentences(sentences, tiny_tokenizer, LABEL2ID, max_length=64, context_size=16)
    assert stats.context_sentences == 5 and sum(map(len, (f["input_ids"] for f in context))) > sum(
        map(len, (f["input_ids"] for f in bare))
    )
    counts = feature_label_counts(context, len(LABELS))
    assert counts == feature_label_counts(bare, len(LABELS))
    assert torch.equal(
        resolve_alpha("auto", LABELS, counts),
        resolve_alpha("auto", LABELS, feature_label_counts(bare, len(LABELS))),
    )
    model = _tokenwise_model(len(tiny_tokenizer))
    assert torch.equal(
        init_classifier_bias(model, counts),
        init_classifier_bias(model, feature_label_counts(bare, len(LABELS))),
    )
    collate = DataCollatorForTokenClassification(tiny_tokenizer)
    losses = []
    for features in (context, bare):
        trainer = make_trainer(
            tmp_path / str(len(losses)), features, tiny_tokenizer, model=model,
            loss=loss, loss_normalization=normalization,
        )  # fmt: skip
        batch = collate(features)
        count = (batch["labels"] != IGNORE_INDEX).sum()
        model.train()
        losses.append(
            (trainer.compute_loss(model, batch, num_items_in_batch=count), trainer.mean_tokens_per_step())
        )
    assert torch.allclose(losses[0][0], losses[1][0], atol=1e-6, rtol=1e-6)
    assert losses[0][1] == losses[1][1]


# --- context dropout ---------------------------------------------------------------------------------


def test_context_dropout_is_drawn_per_epoch_from_the_seed_alone() -> None:
    with_context = [{"input_ids": [1, 2, 3, i], "labels": [0]} for i in range(400)]
    without = [{"input_ids": [1, i], "labels": [0]} for i in range(400)]
    first = ContextDropoutDataset(with_context, without, 0.3, seed=5)
    again = ContextDropoutDataset(with_context, without, 0.3, seed=5)
    epoch0 = list(first.dropped)
    assert epoch0 == again.dropped and 80 < sum(epoch0) < 160  # about 30 %
    assert [len(x["input_ids"]) == 2 for x in first] == epoch0
    first.set_epoch(1)
    assert first.dropped != epoch0
    ContextDropoutCallback(again).on_epoch_begin(None, SimpleNamespace(epoch=1.0), None)
    assert again.dropped == first.dropped and again.epoch == 1
    first.set_epoch(0)
    assert first.dropped == epoch0  # a resumed run draws what the uninterrupted one drew
    assert ContextDropoutDataset(with_context, without, 0.3, seed=6).dropped != epoch0
    assert not any(ContextDropoutDataset(with_context, without, 0.0, seed=5).dropped)
    assert all(ContextDropoutDataset(with_context, without, 1.0, seed=5).dropped)
    assert training_dataset(with_context, None, 0.3, 5) == (with_context, [])
    with pytest.raises(ValueError, match="context_dropout: expected the same sentences"):
        ContextDropoutDataset(with_context, without[:3], 0.3, seed=5)


def test_context_dropout_wraps_only_the_training_set(tmp_path: Path) -> None:
    from nerfocal.data import load_ner_data
    from nerfocal.training import build_trainer, prepare_data

    text = "".join(
        (" ".join(f"{w} {t}\n" for w, t in zip(words, tags, strict=True)).replace("\n ", "\n")) + "\n"
        for words, tags in DOC_A + DOC_C
    )
    path = _conll(tmp_path / "train.conll", text)
    flags = ["--train_file", str(path), "--validation_file", str(path), "--context_size", "16"]
    flags += ["--context_dropout", "0.5", "--output_dir", str(tmp_path / "out"), "--use_cpu", "true"]
    _, data_cfg, loss_cfg, args = parse_config(flags)
    tokenizer = build_tokenizer()
    prepared = prepare_data(data_cfg, tokenizer, load_ner_data(data_cfg))
    assert prepared.train_without_context is not None and prepared.context_size == 16
    assert prepared.evals["validation"].stats.context_sentences == 5
    trainer = build_trainer(_tokenwise_model(len(tokenizer)), tokenizer, prepared, data_cfg, loss_cfg, args)
    assert isinstance(trainer.train_dataset, ContextDropoutDataset)
    assert trainer.train_dataset.seed == args.seed
    assert trainer.eval_dataset == prepared.evals["validation"].features  # evaluation keeps its context
    assert any(isinstance(c, ContextDropoutCallback) for c in trainer.callback_handler.callbacks)


def test_evaluation_windows_and_the_predictor_build_the_same_sequences(
    tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with words that have no sub-word (read as the unknown token), in a sentence or its context."""
    from fixtures import tiny_model

    import nerfocal.predict as predict_module
    from nerfocal.predict import Document, Predictor

    documents = [
        [(["The", "minister", "\u200b", "visited", "Toronto", "."], ["O"] * 6), *DOC_A[1:]],
        DOC_B,
        [(["Paulo", "\u200b"], ["B-PER", "O"]), *DOC_C[1:]],
    ]
    sentences = _sentences(*documents)
    features, _, _ = encode_eval_windows(sentences, tiny_tokenizer, LABEL2ID, max_length=40, context_size=10)
    calls: list[list[list[int]]] = []
    original = predict_module.tokenize_windows

    def spy(*args: Any) -> Any:
        result = original(*args)
        calls.append(result[0])
        return result

    monkeypatch.setattr(predict_module, "tokenize_windows", spy)
    model = tiny_model(LABELS, vocab_size=len(tiny_tokenizer))
    predictor = Predictor(model, tiny_tokenizer, device="cpu", max_length=40, context_size=10)
    inputs = [Document(list(s.tokens), document_id=s.document) for s in sentences]
    assert len(list(predictor.predict_documents(inputs))) == len(sentences)
    assert sorted(calls[-1]) == sorted(f["input_ids"] for f in features)


def test_pack_contexts_gives_a_runs_sentences_one_shared_window() -> None:
    from nerfocal.context import pack_contexts

    def windows(items: list, limit: int) -> list[tuple[str, ...]]:
        packed = pack_contexts(items, limit)
        return [
            tuple(left + list(words) + right)
            for (_, words, _, _), (left, right) in zip(items, list(packed), strict=True)
        ]

    L, R = ["l1", "l2"], ["r1"]
    items = [
        ("a", ["a1", "a2"], 2, (L, ["b1", "b2", "b3"])),  # the document a: a1 a2 | b1 b2 b3 | c1
        ("a", ["b1", "b2", "b3"], 3, (["a1", "a2"], ["c1"])),
        ("a", ["c1"], 1, (["b2", "b3"], R)),
        ("b", ["x"], 1, ([], [])),  # a document of one sentence: no context, never packed
        (None, ["y"], 1, ([], [])),
        ("c", ["p"], 1, ([], ["q"])),
        ("c", ["q"], 1, (["p"], [])),
    ]
    assert windows(items, 0) == [tuple(c[0] + w + c[1]) for _, w, _, c in items]  # 0: as given
    shared = ("l1", "l2", "a1", "a2", "b1", "b2", "b3", "c1", "r1")
    assert windows(items, 6) == [shared, shared, shared, ("x",), ("y",), ("p", "q"), ("p", "q")]
    first, last = ("l1", "l2", "a1", "a2", "b1", "b2", "b3", "c1"), ("b2", "b3", "c1", "r1")
    assert windows(items, 5) == [first, first, last, ("x",), ("y",), ("p", "q"), ("p", "q")]
    assert windows(items, 1)[:3] == [tuple(c[0] + w + c[1]) for _, w, _, c in items[:3]]  # none fits 2
    assert list(pack_contexts([], 8)) == []
