"""Readers and sub-word label alignment."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import LABELS, SHARED_DATA

from nerfocal.config import DataConfig
from nerfocal.conll import DataFormatError, Sentence, read_conll, read_jsonl
from nerfocal.data import load_ner_data
from nerfocal.encode import encode_sentences, word_predictions
from nerfocal.labels import IGNORE_INDEX

L2I = {label: i for i, label in enumerate(LABELS)}


def test_first_subword_carries_the_label_and_the_rest_are_ignored(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    s = Sentence(["Kraków", "is", "big"], ["B-LOC", "O", "O"])
    features, windows, _ = encode_sentences([s], tiny_tokenizer, L2I, max_length=32)
    enc = tiny_tokenizer(s.tokens, is_split_into_words=True)
    word_ids = enc.word_ids()
    assert word_ids.count(0) > 1  # "Kraków" is split into several sub-words
    expected = []
    for j, w in enumerate(word_ids):
        first = w is not None and (j == 0 or word_ids[j - 1] != w)
        expected.append(L2I[s.tags[w]] if first else IGNORE_INDEX)  # type: ignore[index]
    assert features[0]["labels"] == expected
    assert windows[0].first_subwords == [
        j for j, w in enumerate(word_ids) if w is not None and word_ids[j - 1] != w
    ]


def test_label_all_tokens_turns_b_into_i_on_continuations(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    s = Sentence(["Kraków"], ["B-LOC"])
    features, _, _ = encode_sentences([s], tiny_tokenizer, L2I, max_length=32, label_all_tokens=True)
    labels = [label for label in features[0]["labels"] if label != IGNORE_INDEX]
    assert labels[0] == L2I["B-LOC"] and set(labels[1:]) == {L2I["I-LOC"]} and len(labels) > 1


def test_long_sentences_are_split_into_windows_that_cover_every_word(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    words = ["Novak", "met", "Berger", "in", "Lisbon"] * 20
    s = Sentence(words, ["B-PER", "O", "B-PER", "O", "B-LOC"] * 20)
    features, windows, stats = encode_sentences([s], tiny_tokenizer, L2I, max_length=32)
    assert stats.split_sentences == 1 and len(windows) > 1
    assert all(len(f["input_ids"]) <= 32 for f in features)
    assert sum(len(w.first_subwords) for w in windows) == len(words)
    # predictions rejoin in word order
    preds = [
        [f["labels"][j] if f["labels"][j] != IGNORE_INDEX else 0 for j in range(len(f["labels"]))]
        for f in features
    ]
    assert word_predictions(windows, preds, [s], dict(enumerate(LABELS)))[0] == s.tags


def test_truncation_is_counted(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    s = Sentence(["Lisbon"] * 100, ["B-LOC"] * 100)
    _, windows, stats = encode_sentences([s], tiny_tokenizer, L2I, max_length=32, long_sentences="truncate")
    assert stats.truncated_sentences == 1 and stats.truncated_words == 100 - len(windows[0].first_subwords)


def test_conll_reader_names_file_and_line_for_a_wrong_column_count(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP B-ORG\nrejects O\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.conll:2: expected 3 columns"):
        list(read_conll(path))


def test_jsonl_reader_validates_records(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"tokens": ["a", "b"], "tags": ["O", "B-X"], "id": 7}\n{"tokens": ["a"], "tags": []}\n')
    reader = read_jsonl(path)
    first = next(reader)
    assert first.tags == ["O", "B-X"] and first.extra == {"id": 7}
    with pytest.raises(DataFormatError, match=r"x.jsonl:2: expected 1 tags"):
        next(reader)


def test_iob1_input_is_converted_and_unseen_dev_labels_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("EU I-ORG\nrejects O\n\nPeter I-PER\n", encoding="utf-8")
    (tmp_path / "dev.txt").write_text("Paris I-LOC\n", encoding="utf-8")
    cfg = DataConfig(train_file=str(tmp_path / "train.txt"), validation_file=str(tmp_path / "dev.txt"))
    with pytest.raises(ValueError, match=r"dev.txt:1: label 'B-LOC' never occurs .* known labels: O, B-ORG"):
        load_ner_data(cfg)
    cfg.unknown_labels = "O"
    data = load_ner_data(cfg)
    assert data.scheme == "IOB2"
    assert data.sentences["train"][0].tags == ["B-ORG", "O"]
    assert data.sentences["validation"][0].tags == ["O"]
    assert data.label_list == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_local_saved_hf_dataset_maps_classlabel_names(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"tokens": [["Ann", "Lee"]], "ner_tags": [[1, 2]]}, features=features
            )
        }
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    data = load_ner_data(DataConfig(dataset_path=str(tmp_path / "ds")))
    assert data.sentences["train"][0].tags == ["B-PER", "I-PER"]


@pytest.mark.skipif(not (SHARED_DATA / "conll2003").is_dir(), reason="../shared/data not present")
def test_conll2003_counts_match_the_published_figures() -> None:
    data = load_ner_data(
        DataConfig(train_file=str(SHARED_DATA / "conll2003" / "train.txt"), tag_scheme="auto")
    )
    sentences = data.sentences["train"]
    assert len(sentences) == 14041 and sum(len(s.tokens) for s in sentences) == 203621
    assert data.label_list == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
