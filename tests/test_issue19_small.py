"""Issue 19 item 14: learning_rate 0 warns, pinned memory is off without an accelerator, the repaired-tag
warning counts only the sentences max_train_samples keeps. See docs/robustness.md."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from nerfocal.config import parse_config
from nerfocal.data import load_ner_data
from nerfocal.preflight import check_run_sources


def _configs(tmp_path: Path, encoder: Path, *extra: str):  # type: ignore[no-untyped-def]
    argv = ["--model_name_or_path", str(encoder), "--output_dir", str(tmp_path / "run")]
    return parse_config([*argv, "--train_file", str(tmp_path / "t.conll"), *extra])


def test_learning_rate_zero_is_a_warning(
    tmp_path: Path, tiny_encoder_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_cfg, _, _, args = _configs(tmp_path, tiny_encoder_dir, "--learning_rate", "0")
    with caplog.at_level(logging.WARNING, logger="nerfocal"):
        check_run_sources(model_cfg, args)
    assert "learning_rate is 0: the weights will not change" in caplog.text
    caplog.clear()
    model_cfg, _, _, args = _configs(tmp_path, tiny_encoder_dir, "--learning_rate", "1e-4")
    with caplog.at_level(logging.WARNING, logger="nerfocal"):
        check_run_sources(model_cfg, args)
    assert "learning_rate" not in caplog.text


@pytest.mark.skipif(torch.accelerator.is_available(), reason="pinned memory works with an accelerator")
def test_pinned_memory_is_off_without_an_accelerator(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    model_cfg, _, _, args = _configs(tmp_path, tiny_encoder_dir)
    assert args.dataloader_pin_memory is True  # transformers' default unless use_cpu
    check_run_sources(model_cfg, args)
    assert args.dataloader_pin_memory is False


def test_the_repaired_tag_warning_counts_only_the_kept_sentences(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train = tmp_path / "t.conll"
    # sentence 1 has one invalid I- (after O); sentences 2 and 3 have two each, beyond max_train_samples
    train.write_text(
        "Anna B-PER\nsaw O\nLisbon I-LOC\n\nBob I-PER\nin O\nRome I-LOC\n\nEve I-PER\nat O\nUN I-ORG\n",
        encoding="utf-8",
    )
    _, data_cfg, _, _ = parse_config(
        ["--train_file", str(train), "--max_train_samples", "1", "--tag_scheme", "IOB2"]
    )
    with caplog.at_level(logging.WARNING, logger="nerfocal"):
        load_ner_data(data_cfg)
    expected = "train: 1 tag(s) in 1 sentence(s) of the first 1 (max_train_samples) are not valid IOB2"
    assert expected in caplog.text, caplog.text  # before: 5 tag(s) in 3 sentence(s)
