"""Issue 19 items 9 and 13: model sources that cannot work fail early with one line naming what is wrong
(no tokenizer files, a misspelled path, a hub name while offline, no safetensors, a broken config.json,
an output_dir that is a file, a corrupt checkpoint). See docs/robustness.md."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fixtures import SAMPLE, build_tiny_model

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


# --- item 13: the model source and output_dir are checked before the data is read ----------------------


@pytest.fixture()
def encoder(tmp_path: Path) -> Path:
    return build_tiny_model(tmp_path / "encoder", labels=["O", "B-X"])


def _train_missing_data(tmp_path: Path, model: str, *extra: str) -> list[str]:
    argv = _train(tmp_path, model, *extra)
    argv[argv.index("--train_file") + 1] = str(tmp_path / "missing.conll")  # the model is checked first
    return argv


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        ("./no/such/model", ["model_name_or_path: ./no/such/model: no such model directory"]),
        ("no-such-model-xyz", ["model_name_or_path: 'no-such-model-xyz'", "offline", "not in the"]),
        ("two words", ["model_name_or_path: 'two words'", "expected a local directory or a hub name"]),
    ],
)
def test_a_misspelled_path_or_an_offline_hub_name_fails_before_the_data_is_read(
    model: str, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest
    assert cli_main(_train_missing_data(tmp_path, model)) == 2
    _one_line(capsys.readouterr().err, "train", *needles)


def test_an_encoder_with_pickle_weights_only_or_a_broken_config_is_one_line(
    encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (encoder / "model.safetensors").rename(encoder / "pytorch_model.bin")
    assert cli_main(_train_missing_data(tmp_path, str(encoder))) == 2
    _one_line(capsys.readouterr().err, "train", f"{encoder}: no model.safetensors", "pytorch_model.bin")
    (encoder / "pytorch_model.bin").rename(encoder / "model.safetensors")
    (encoder / "config.json").write_text('{"model_type": "bert",\n  "hidden_size": 32,,\n}', encoding="utf-8")
    assert cli_main(_train_missing_data(tmp_path, str(encoder))) == 2
    _one_line(capsys.readouterr().err, "train", f"{encoder / 'config.json'}:2: expected JSON")


@pytest.mark.parametrize("under", [False, True])
def test_an_output_dir_that_is_a_file_or_under_a_file_fails_before_the_data_is_read(
    under: bool, encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a directory\n", encoding="utf-8")
    argv = _train_missing_data(tmp_path, str(encoder))
    argv[argv.index("--output_dir") + 1] = str(blocker / "run" if under else blocker)
    assert cli_main(argv) == 2
    _one_line(capsys.readouterr().err, "train", f"output_dir: {blocker} is a file")
    assert blocker.read_text(encoding="utf-8") == "not a directory\n"


def test_a_corrupt_checkpoint_on_resume_is_one_line_naming_it(
    encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _train(tmp_path, str(encoder), "--save_strategy", "steps", "--save_steps", "1")
    assert cli_main(argv) == 0
    checkpoint = tmp_path / "run" / "checkpoint-1"
    capsys.readouterr()
    for name in ("optimizer.pt", "model.safetensors"):
        shutil.copy(checkpoint / name, tmp_path / name)
        data = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(data[: len(data) // 2])  # a copy cut short (disk full, a kill)
        resume = _train(
            tmp_path, str(encoder), "--max_steps", "2", "--resume_from_checkpoint", str(checkpoint)
        )
        assert cli_main(resume) == 2
        _one_line(capsys.readouterr().err, "train", f"{checkpoint / name}: cannot read the checkpoint")
        shutil.copy(tmp_path / name, checkpoint / name)
