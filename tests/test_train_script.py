"""End to end: scripts/train_ner.py on a tiny random BERT, then transformers.pipeline loads the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import ROOT, SAMPLE, build_tiny_model

from nerfocal.cli import main as cli_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    encoder = build_tiny_model(tmp / "encoder", labels=["O", "B-X"])
    out = tmp / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train_ner.py"),
        "--model_name_or_path",
        str(encoder),
        "--train_file",
        str(SAMPLE / "train.conll"),
        "--validation_file",
        str(SAMPLE / "dev.conll"),
        "--test_file",
        str(SAMPLE / "test.conll"),
        "--max_train_samples",
        "200",
        "--max_steps",
        "12",
        "--per_device_train_batch_size",
        "16",
        "--learning_rate",
        "1e-3",
        "--alpha",
        "auto",
        "--ce_warmup_steps",
        "4",
        "--max_length",
        "64",
        "--output_dir",
        str(out),
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_training_writes_model_reports_and_config(trained: Path) -> None:
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "eval_results.json",
        "eval_report.txt",
        "nerfocal_config.yaml",
        "trainer_state.json",
    ):
        assert (trained / name).is_file(), name
    results = json.loads((trained / "eval_results.json").read_text())
    for split in ("validation", "test"):
        assert {"precision", "recall", "f1", "macro_f1", "per_type", "ece", "nll"} <= set(results[split])
    config = json.loads((trained / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and len(config["id2label"]) == 9
    assert config["nerfocal_tag_scheme"] == "IOB2"
    assert config["nerfocal_temperature"] > 0
    assert config["nerfocal_max_length"] == 64  # predict windows like training
    state = json.loads((trained / "trainer_state.json").read_text())
    assert {"step": 4, "loss_switch": "focal"} in state["log_history"]


def test_transformers_pipeline_loads_the_saved_model(trained: Path) -> None:
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(trained), device="cpu")
    out = ner("Anna Novak flew to Lisbon .")
    assert isinstance(out, list)


def test_saved_config_reproduces_the_options(trained: Path) -> None:
    from nerfocal.config import parse_config

    _, data, loss, args = parse_config([str(trained / "nerfocal_config.yaml")])
    assert (
        loss.alpha == "auto" and loss.ce_warmup_steps == 4 and data.max_length == 64 and args.max_steps == 12
    )


def test_bad_config_is_a_one_line_error(
    tmp_path: Path, tiny_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"  # a real model: train checks the model source before the data
    cfg.write_text(f"train_file: nowhere.conll\nmodel_name_or_path: {tiny_encoder_dir}\n")
    assert cli_main(["train", str(cfg), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nerfocal train: error:") and "nowhere.conll" in err and "\n" not in err
