"""Issue 19: the logged training figures, one run per output directory, a final save on a full disk."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures import SAMPLE, make_trainer, sample_features, tiny_model

from nerfocal.cli.train import main as train_main
from nerfocal.losses import IGNORE_INDEX, compute_loss
from nerfocal.trainer import LossDivergedError


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def argv(encoder: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--model_name_or_path", str(encoder), "--train_file", str(SAMPLE / "train.conll")),
        *("--max_train_samples", "16", "--max_length", "64", "--max_steps", "4"),
        *("--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "3"),
        *("--temperature_scaling", "false", "--disable_tqdm", "true", "--report_to", "none"),
        *("--use_cpu", "true", "--output_dir", str(out), *extra),
    ]


def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "eval_results.json").read_text())


# --- 6: logged figures ----------------------------------------------------------------------------------


def test_dataset_normalization_logs_the_per_token_mean_when_the_steps_do_not_divide(tmp_path: Path) -> None:
    # 10 sentences, batch 8: steps of 8 and 2 sentences. Learning rate 0, no dropout: the weights stay, so
    # the logged train_loss must be the mean cross-entropy over every labelled token of the epoch
    features, tokenizer = sample_features(10)
    model = tiny_model(dropout=0.0)
    trainer = make_trainer(
        tmp_path, features, tokenizer, model, loss="ce", loss_normalization="dataset",
        max_steps=-1, num_train_epochs=1, learning_rate=0.0,
    )  # fmt: skip
    output = trainer.train()
    assert trainer.state.global_step == 2
    batch = trainer.data_collator(features)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    expected = compute_loss("ce", logits, labels, reduction="sum") / (labels != IGNORE_INDEX).sum()
    assert output.training_loss == pytest.approx(float(expected), rel=1e-4)


def test_a_resumed_run_logs_the_train_loss_of_the_uninterrupted_run(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    # checkpoint at step 2, logs at step 3: the steps before the checkpoint and its unlogged tail count too
    full = tmp_path / "full"
    assert train_main(argv(tiny_encoder_dir, full, "--save_strategy", "steps", "--save_steps", "2")) == 0
    resumed = tmp_path / "resumed"
    again = argv(tiny_encoder_dir, resumed, "--resume_from_checkpoint", str(full / "checkpoint-2"))
    assert train_main(again) == 0
    expected = results(full)["train"]["train_loss"]
    assert results(resumed)["train"]["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_the_nan_stop_names_the_step_the_log_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nerfocal.trainer

    features, tokenizer = sample_features(32)
    trainer = make_trainer(tmp_path, features, tokenizer, tiny_model(), max_steps=4, logging_steps=1)

    def nan_at_third_step(name: str, logits: torch.Tensor, labels: torch.Tensor, **kw: Any) -> torch.Tensor:
        loss = compute_loss(name, logits, labels, **kw)
        return loss * float("nan") if trainer.state.global_step == 2 else loss

    monkeypatch.setattr(nerfocal.trainer, "compute_loss", nan_at_third_step)
    with pytest.raises(
        LossDivergedError, match=r"^step 3: .*before this step saved to .*checkpoint-diverged-2\."
    ):
        trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [1, 2]  # steps 1, 2 were fine


# --- 10: one run per output directory -------------------------------------------------------------------


def test_an_output_dir_holding_another_run_is_refused_then_replaced_with_the_flag(
    tiny_encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    first = argv(tiny_encoder_dir, out, "--test_file", str(SAMPLE / "dev.conll"))
    assert train_main([*first, "--save_strategy", "steps", "--save_steps", "2"]) == 0
    assert (out / "predictions_test.jsonl").is_file() and (out / "checkpoint-4").is_dir()
    (out / "notes.txt").write_text("mine")  # not a run artefact: kept
    capsys.readouterr()

    second = argv(tiny_encoder_dir, out)
    assert train_main(second) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nerfocal train: error: --output_dir {out}: holds another run (")
    assert "--resume_from_checkpoint auto" in err and "--overwrite_output_dir true" in err and "\n" not in err
    assert (out / "predictions_test.jsonl").is_file()  # nothing touched

    assert train_main([*second, "--overwrite_output_dir", "true"]) == 0
    assert not list(out.glob("checkpoint-*")) and not (out / "predictions_test.jsonl").exists()
    assert "test" not in results(out)
    assert (out / "notes.txt").read_text() == "mine"
    assert "test" not in (out / "eval_report.txt").read_text()


def test_resuming_into_the_same_output_dir_is_allowed_and_overwrite_with_resume_is_refused(
    tiny_encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_main(argv(tiny_encoder_dir, out, "--save_strategy", "steps", "--save_steps", "2")) == 0
    resume = argv(tiny_encoder_dir, out, "--resume_from_checkpoint", "auto", "--max_steps", "6")
    assert train_main(resume) == 0 and results(out)["train"]["global_step"] == 6
    capsys.readouterr()
    assert train_main([*resume, "--overwrite_output_dir", "true"]) == 2
    assert "got both" in capsys.readouterr().err


# --- 11: a full disk at the final save ------------------------------------------------------------------


def _full_disk_for(monkeypatch: pytest.MonkeyPatch, *full: Path) -> None:
    """safetensors raises ENOSPC for model files written below any of ``full``."""
    import transformers.modeling_utils

    real = transformers.modeling_utils.safe_save_file

    def save_file(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        if any(Path(filename).is_relative_to(folder) for folder in full):
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", save_file)


def test_a_full_disk_at_the_final_save_keeps_the_model_in_the_rescue_folder(
    tiny_encoder_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "run"
    monkeypatch.delenv("NERFOCAL_RESCUE_DIR", raising=False)
    import nerfocal.trainer

    class FullAtTheEnd(nerfocal.trainer.FocalLossTrainer):
        def _finalize_training(self, *args: Any) -> Any:
            _full_disk_for(monkeypatch, out)  # checkpoints went through; the final save fails
            return super()._finalize_training(*args)

    monkeypatch.setattr(nerfocal.trainer, "FocalLossTrainer", FullAtTheEnd)
    code = train_main(argv(tiny_encoder_dir, out, "--save_strategy", "steps", "--save_steps", "2"))
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("nerfocal train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    rescue = Path(f"{out}.rescue")
    needles = (
        f"{out}: the final model could not be written (No space left on device)",
        " MB are free",
        f"saved it to {rescue} instead",
        f"last complete checkpoint is {out / 'checkpoint-4'}",
    )
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert (rescue / "model.safetensors").is_file() and (rescue / "config.json").is_file()
    assert not (out / "model.safetensors").exists() and not list(out.glob(".saving-*"))


def test_a_full_rescue_folder_too_says_what_to_free_and_where_to_resume(
    tiny_encoder_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, rescue = tmp_path / "run", tmp_path / "elsewhere"
    monkeypatch.setenv("NERFOCAL_RESCUE_DIR", str(rescue))
    _full_disk_for(monkeypatch, out, rescue)
    assert train_main(argv(tiny_encoder_dir, out)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"saving it to {rescue} failed too (No space left on device)" in err
    assert "there is no complete checkpoint" in err and "NERFOCAL_RESCUE_DIR" in err
    assert not (rescue / "model.safetensors").exists()
    shutil.rmtree(out)
