"""Prior init and alpha auto count the labels the loss sees: encoded positions, not file words
(issue 19, item 1; docs/robustness.md)."""

from __future__ import annotations

from pathlib import Path

from fixtures import SAMPLE, build_tokenizer

from nerfocal.config import parse_config
from nerfocal.training import feature_label_counts, prepare_data


def _prepared(tmp_path: Path, *flags: str):  # type: ignore[no-untyped-def]
    _, data_cfg, _, _ = parse_config(
        ["--train_file", str(SAMPLE / "train.conll"), "--output_dir", str(tmp_path), *flags]
    )
    return prepare_data(data_cfg, build_tokenizer())


def test_counts_are_those_of_the_positions_in_the_loss(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path)
    labelled = [y for f in prepared.train_features for y in f["labels"] if y >= 0]
    assert sum(prepared.label_counts) == len(labelled)
    assert prepared.label_counts == feature_label_counts(prepared.train_features, len(prepared.label_list))


def test_label_all_tokens_counts_every_labelled_sub_word(tmp_path: Path) -> None:
    words = _prepared(tmp_path)
    every = _prepared(tmp_path, "--label_all_tokens", "true")
    inside = every.label_list.index("I-LOC")
    assert every.label_counts[inside] > words.label_counts[inside]
    assert sum(every.label_counts) > sum(words.label_counts)


def test_max_train_samples_counts_only_the_kept_sentences(tmp_path: Path) -> None:
    full = _prepared(tmp_path)
    few = _prepared(tmp_path, "--max_train_samples", "20")
    outside = few.label_list.index("O")
    assert few.label_counts[outside] < full.label_counts[outside] / 10
    assert sum(few.label_counts) == sum(1 for f in few.train_features for y in f["labels"] if y >= 0)
