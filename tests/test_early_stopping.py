"""Early stopping on dev entity F1: the options it sets, the best checkpoint loaded, the epoch reported."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fixtures import SAMPLE, build_tiny_model
from safetensors.torch import load_file

import nerfocal.evaluate
from nerfocal.config import parse_config
from nerfocal.training import train

# dev F1 per evaluation, scripted: best at the 2nd evaluation, then 2 without a gain -> stop after the 4th
SCRIPTED_F1 = [0.10, 0.50, 0.30, 0.20, 0.90, 0.95]


def _argv(tmp_path: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(encoder),
        "--train_file", str(SAMPLE / "train.conll"),
        "--validation_file", str(SAMPLE / "dev.conll"),
        "--max_train_samples", "64",
        "--per_device_train_batch_size", "16",
        "--learning_rate", "1e-3",
        "--num_train_epochs", "6",
        "--max_length", "64",
        "--output_dir", str(tmp_path / "run"),
        "--disable_tqdm", "true",
        "--use_cpu", "true",
        "--temperature_scaling", "false",
        *extra,
    ]  # fmt: skip


def test_patience_sets_per_epoch_evaluation_saving_and_best_model_loading(tmp_path: Path) -> None:
    *_, args = parse_config(["--early_stopping_patience", "2", "--output_dir", str(tmp_path)])
    assert str(args.eval_strategy.value) == "epoch" and str(args.save_strategy.value) == "epoch"
    assert args.load_best_model_at_end and args.metric_for_best_model == "f1" and args.greater_is_better
    *_, plain = parse_config(["--output_dir", str(tmp_path)])
    assert not plain.load_best_model_at_end and str(plain.save_strategy.value) == "no"
    *_, steps = parse_config(
        [
            "--early_stopping_patience",
            "1",
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "7",
            "--output_dir",
            "x",
        ]
    )
    assert str(steps.save_strategy.value) == "steps" and steps.save_steps == 7


def test_metric_for_best_model_is_checked_and_its_direction_follows_the_metric(tmp_path: Path) -> None:
    out = ["--output_dir", str(tmp_path)]
    *_, viterbi = parse_config(
        ["--early_stopping_patience", "2", "--metric_for_best_model", "viterbi_f1", *out]
    )
    assert viterbi.metric_for_best_model == "viterbi_f1" and viterbi.greater_is_better
    *_, nll = parse_config(["--early_stopping_patience", "2", "--metric_for_best_model", "eval_nll", *out])
    assert nll.greater_is_better is False  # lower is better, as for the loss
    with pytest.raises(
        ValueError, match=r"metric_for_best_model: expected one of f1, .*viterbi_f1.*, got 'F1-dev'"
    ):
        parse_config(["--early_stopping_patience", "2", "--metric_for_best_model", "F1-dev", *out])


def test_early_stopping_on_the_viterbi_dev_f1_keeps_its_best_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted: argmax dev F1 peaks at the 1st evaluation, Viterbi dev F1 at the 3rd: the 3rd is kept."""
    encoder = build_tiny_model(tmp_path / "encoder")
    make = nerfocal.evaluate.make_compute_metrics
    argmax_f1, viterbi_f1 = [0.9, 0.2, 0.3, 0.1], [0.1, 0.2, 0.6, 0.5]

    def scripted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        real = make(*args, **kwargs)  # type: ignore[arg-type]
        calls = iter(zip(argmax_f1, viterbi_f1, strict=True))

        def compute(eval_pred: object) -> dict[str, float]:
            metrics = real(eval_pred)
            assert "viterbi_f1" in metrics  # the real dev evaluation scores Viterbi too
            f1, viterbi = next(calls)
            return {**metrics, "f1": f1, "viterbi_f1": viterbi}

        return compute

    monkeypatch.setattr(nerfocal.evaluate, "make_compute_metrics", scripted)
    extra = (
        "--early_stopping_patience",
        "2",
        "--metric_for_best_model",
        "viterbi_f1",
        "--num_train_epochs",
        "4",
    )
    result = train(*parse_config(_argv(tmp_path, encoder, *extra)))
    assert result.status == 0
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert [h["eval_viterbi_f1"] for h in state["log_history"] if "eval_viterbi_f1" in h] == viterbi_f1
    assert state["best_global_step"] == 3 * (64 // 16) and state["best_metric"] == pytest.approx(0.6)
    assert result.metrics and result.metrics["train"]["best_epoch"] == pytest.approx(3.0)


def test_best_model_without_early_stopping_follows_the_metric_direction(tmp_path: Path) -> None:
    best = ["--load_best_model_at_end", "true", "--eval_strategy", "epoch", "--save_strategy", "epoch"]
    *_, nll = parse_config([*best, "--metric_for_best_model", "nll", "--output_dir", str(tmp_path)])
    assert nll.greater_is_better is False  # transformers alone would take a higher NLL as better
    *_, explicit = parse_config(
        [
            *best,
            "--metric_for_best_model",
            "nll",
            "--greater_is_better",
            "true",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert explicit.greater_is_better is True  # an explicit choice is kept


def test_the_checked_metric_names_are_the_ones_the_dev_evaluation_logs() -> None:
    import numpy as np

    from nerfocal.conll import Sentence
    from nerfocal.encode import Window
    from nerfocal.training_args import DEV_METRICS

    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    sentence = Sentence(["Anna", "spoke"], ["B-PER", "O"])
    compute = nerfocal.evaluate.make_compute_metrics([Window(0, 0, [0, 1])], [sentence], id2label, False)
    logits = np.log(np.array([[[0.2, 0.7, 0.1], [0.8, 0.1, 0.1]]], dtype=np.float32))
    logged = compute(SimpleNamespace(predictions=logits, label_ids=np.array([[1, 0]])))
    assert set(DEV_METRICS) == {*logged, "loss"}  # Trainer adds eval_loss


def test_patience_below_zero_is_an_error_naming_the_option_and_zero_turns_it_off() -> None:
    with pytest.raises(ValueError, match="early_stopping_patience: expected an integer >= 1, or 0 for no"):
        parse_config(["--early_stopping_patience", "-2"])
    *_, off = parse_config(["--early_stopping_patience", "0", "--validation_file", "dev.conll"])
    assert off.early_stopping_patience is None and not off.load_best_model_at_end


def test_early_stopping_without_a_dev_set_is_an_error(tmp_path: Path) -> None:
    encoder = build_tiny_model(tmp_path / "encoder")
    argv = [a for a in _argv(tmp_path, encoder, "--early_stopping_patience", "2")]
    i = argv.index("--validation_file")
    del argv[i : i + 2]
    with pytest.raises(ValueError, match="early_stopping_patience: needs a development set"):
        train(*parse_config(argv))


def test_the_best_dev_checkpoint_is_loaded_and_its_epoch_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = build_tiny_model(tmp_path / "encoder")
    make = nerfocal.evaluate.make_compute_metrics

    def scripted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        real = make(*args, **kwargs)  # type: ignore[arg-type]
        calls = iter(SCRIPTED_F1)

        def compute(eval_pred: object) -> dict[str, float]:
            return {**real(eval_pred), "f1": next(calls)}

        return compute

    monkeypatch.setattr(nerfocal.evaluate, "make_compute_metrics", scripted)
    result = train(*parse_config(_argv(tmp_path, encoder, "--early_stopping_patience", "2")))
    assert result.status == 0
    out = tmp_path / "run"
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [h for h in state["log_history"] if "eval_f1" in h]
    assert [h["eval_f1"] for h in evals] == SCRIPTED_F1[:4]  # stopped: 2 evaluations without a gain
    steps_per_epoch = 64 // 16
    assert state["best_global_step"] == 2 * steps_per_epoch
    assert state["best_metric"] == pytest.approx(0.5)
    train_metrics = result.metrics["train"] if result.metrics else {}
    assert train_metrics["best_epoch"] == pytest.approx(2.0)
    assert train_metrics["best_step"] == 2 * steps_per_epoch
    assert json.loads((out / "eval_results.json").read_text())["train"]["best_epoch"] == pytest.approx(2.0)
    final = load_file(str(out / "model.safetensors"))
    best = load_file(str(out / f"checkpoint-{2 * steps_per_epoch}" / "model.safetensors"))
    last = load_file(str(out / f"checkpoint-{4 * steps_per_epoch}" / "model.safetensors"))
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert any(not torch.equal(final[k], last[k]) for k in last)


class _Crash(RuntimeError):
    pass


def _scripted_metrics(
    monkeypatch: pytest.MonkeyPatch, scores: list[float], crash_at: int | None = None
) -> None:
    """dev F1 taken from ``scores`` in order; the evaluation number ``crash_at`` (1-based) raises instead."""
    make = nerfocal.evaluate.make_compute_metrics

    def scripted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        real = make(*args, **kwargs)  # type: ignore[arg-type]
        calls = iter(enumerate(scores, 1))

        def compute(eval_pred: object) -> dict[str, float]:
            number, score = next(calls)
            if number == crash_at:
                raise _Crash("killed")
            return {**real(eval_pred), "f1": score}

        return compute

    monkeypatch.setattr(nerfocal.evaluate, "make_compute_metrics", scripted)


def test_a_resumed_run_keeps_the_patience_count_and_stops_where_an_uninterrupted_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed during the 4th evaluation, resumed from the 3rd epoch's checkpoint: the count of evaluations
    without a gain (1 after the 3rd) must come back from the checkpoint. Reset to 0, the run would go on to
    the 5th evaluation (0.90) and keep a different best checkpoint."""
    encoder = build_tiny_model(tmp_path / "encoder")
    argv = _argv(tmp_path, encoder, "--early_stopping_patience", "2")
    _scripted_metrics(monkeypatch, SCRIPTED_F1, crash_at=4)
    with pytest.raises(_Crash):
        train(*parse_config(argv))
    out = tmp_path / "run"
    steps_per_epoch = 64 // 16
    assert (out / f"checkpoint-{3 * steps_per_epoch}").is_dir()
    _scripted_metrics(monkeypatch, SCRIPTED_F1[3:])
    result = train(*parse_config([*argv, "--resume_from_checkpoint", "auto"]))
    assert result.status == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert [h["eval_f1"] for h in state["log_history"] if "eval_f1" in h] == SCRIPTED_F1[:4]
    assert state["best_global_step"] == 2 * steps_per_epoch
    assert result.metrics and result.metrics["train"]["best_epoch"] == pytest.approx(2.0)


def test_save_total_limit_one_still_keeps_and_loads_the_best_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = build_tiny_model(tmp_path / "encoder")
    _scripted_metrics(monkeypatch, SCRIPTED_F1)
    argv = _argv(tmp_path, encoder, "--early_stopping_patience", "2", "--save_total_limit", "1")
    result = train(*parse_config(argv))
    assert result.status == 0
    out = tmp_path / "run"
    steps_per_epoch = 64 // 16
    best = out / f"checkpoint-{2 * steps_per_epoch}"
    assert best.is_dir()  # Trainer never rotates the best checkpoint away
    final = load_file(str(out / "model.safetensors"))
    kept = load_file(str(best / "model.safetensors"))
    assert all(torch.equal(final[k], kept[k]) for k in kept)
