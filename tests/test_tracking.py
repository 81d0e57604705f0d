"""The loss schedule reaches TensorBoard: a tiny run writes train/gamma and train/ce_warmup events."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import make_trainer, sample_features

from nerfocal.config import LossConfig
from nerfocal.tracking import add_loss_schedule_callback, schedule_scalars


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = {p.parent for p in log_dir.rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_the_gamma_ramp_and_the_warmup_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    log_dir = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(log_dir))  # transformers 5: no logging_dir argument
    features, tokenizer = sample_features(16)
    trainer = make_trainer(
        tmp_path / "out",
        features,
        tokenizer,
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="tensorboard",
        ce_warmup_steps=2,
        gamma_ramp_steps=2,
        gamma=2.0,
    )
    add_loss_schedule_callback(trainer)
    trainer.train()
    got = scalars(log_dir)
    # the step logged as N is the optimizer step N-1 (0-based) that just ran: CE, CE, ramp 0, 1, 2, 2
    assert got["train/gamma"] == [(1, 0.0), (2, 0.0), (3, 0.0), (4, 1.0), (5, 2.0), (6, 2.0)]
    assert [v for _, v in got["train/ce_warmup"]] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert {v for _, v in got["train/loss_switch_step"]} == {2.0}
    assert "train/loss" in got
    # trainer_state.json's history stays as the Trainer wrote it
    assert not any("gamma" in entry for entry in trainer.state.log_history)


def test_scalars_for_other_losses() -> None:
    assert schedule_scalars("ce", {}, LossConfig(loss="ce")) == {"ce_warmup": 0.0}
    adaptive = LossConfig(loss="focal_adaptive", adaptive_gammas="5,3", adaptive_thresholds="0.2")
    assert schedule_scalars("ce", {}, adaptive) == {"ce_warmup": 1.0, "gamma_0": 0.0, "gamma_1": 0.0}
    assert schedule_scalars("focal_adaptive", {"gammas": (5.0, 3.0)}, adaptive)["gamma_1"] == 3.0
    assert schedule_scalars("dice", {}, LossConfig(loss="dice")) == {"ce_warmup": 0.0}
