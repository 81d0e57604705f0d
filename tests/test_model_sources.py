"""Issue 19 items 9 and 13: model sources that cannot work fail early with one line naming what is wrong
(no tokenizer files, a misspelled path, a hub name while offline, no safetensors, a broken config.json,
an output_dir that is a file, a corrupt checkpoint). See docs/robustness.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE, build_tiny_model

from nerfocal.cli import main as cli_main
from nerfocal.loading import load_pretrained, load_tokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _without_tokenizer(directory: Path) -> Path:
    for name in TOKENIZER_FILES:
        (directory / name).unlink(missing_ok=True)
    return directory


@pytest.fixture()
def bare_model(tmp_path: Path) -> Path:
    return _without_tokenizer(build_tiny_model(tmp_path / "bare", labels=["O", "B-LOC", "I-LOC"]))


def _one_line(err: str, command: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith(f"nerfocal {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_load_pretrained_without_tokenizer_files_is_an_error_naming_them(bare_model: Path) -> None:
    with pytest.raises(ValueError, match=r"no tokenizer files .*tokenizer\.json.* 5 tokens for 300"):
        load_pretrained(bare_model)


def test_load_tokenizer_without_tokenizer_files_is_an_error_naming_them(bare_model: Path) -> None:
    with pytest.raises(ValueError, match=rf"{bare_model}: no tokenizer files"):
        load_tokenizer(str(bare_model))


def _train(tmp_path: Path, model: str, *extra: str) -> list[str]:
    return [
        "train", "--model_name_or_path", model, "--train_file", str(SAMPLE / "train.conll"),
        "--output_dir", str(tmp_path / "run"), "--use_cpu", "true", "--max_steps", "1",
        "--max_train_samples", "4", "--disable_tqdm", "true", "--report_to", "none", *extra,
    ]  # fmt: skip


def test_train_and_predict_from_a_model_without_tokenizer_fail_in_one_line(
    bare_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(_train(tmp_path, str(bare_model))) == 2
    _one_line(capsys.readouterr().err, "train", str(bare_model), "no tokenizer files")
    text = tmp_path / "in.txt"
    text.write_text("Anna visited Lisbon.\n", encoding="utf-8")
    assert cli_main(["predict", "--model", str(bare_model), "--input", str(text), "--device", "cpu"]) == 2
    _one_line(capsys.readouterr().err, "predict", str(bare_model), "no tokenizer files")
