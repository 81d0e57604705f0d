"""The schedule of a run that sets none: with a dev set, up to 10 epochs with early stopping (patience 2)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fixtures import build_tiny_model
from test_early_stopping import _argv

import nerfocal.evaluate
from nerfocal.config import parse_config
from nerfocal.schedule import DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, require_dev_set, settle_default_schedule
from nerfocal.training import train

DEV = ["--validation_file", "dev.conll"]


def _schedule(argv: list[str]) -> tuple[float, int | None, str, bool, bool]:
    *_, args = parse_config(argv)
    strategy = str(args.eval_strategy.value)
    return (
        args.num_train_epochs,
        args.early_stopping_patience,
        strategy,
        args.load_best_model_at_end,
        args.default_schedule,
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # a dev set and nothing else: the convergence protocol
        (DEV, (DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, "epoch", True, True)),
        (["--dataset_path", "saved"], (DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, "epoch", True, True)),
        # a budget given: the user's schedule, no early stopping added
        ([*DEV, "--num_train_epochs", "3"], (3.0, None, "no", False, False)),
        ([*DEV, "--num_train=2"], (2.0, None, "no", False, False)),  # abbreviations count as given
        ([*DEV, "--max_steps", "100"], (3.0, None, "no", False, False)),
        # patience given alone: it keeps it, and the ceiling rises to 10 epochs
        ([*DEV, "--early_stopping_patience", "4"], (DEFAULT_MAX_EPOCHS, 4, "epoch", True, False)),
        ([*DEV, "--early_stopping_patience", "3", "--num_train_epochs", "5"], (5.0, 3, "epoch", True, False)),
        # 0: off
        ([*DEV, "--early_stopping_patience", "0"], (3.0, None, "no", False, False)),
        # no dev set: transformers' 3 epochs
        ([], (3.0, None, "no", False, False)),
        (["--train_file", "train.conll"], (3.0, None, "no", False, False)),
    ],
)
def test_the_default_schedule_applies_only_when_no_budget_is_given(
    argv: list[str], expected: tuple[Any, ...]
) -> None:
    assert _schedule(argv) == expected


def test_yaml_keys_count_as_given(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("validation_file: dev.conll\nnum_train_epochs: 1\n")
    assert _schedule([str(config)]) == (1.0, None, "no", False, False)
    config.write_text("validation_file: dev.conll\nlearning_rate: 1.0e-4\n")
    assert _schedule([str(config)]) == (DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, "epoch", True, True)


def test_a_negative_patience_is_an_error_naming_the_option() -> None:
    with pytest.raises(ValueError, match="early_stopping_patience: expected an integer >= 1, or 0 for no"):
        parse_config(["--early_stopping_patience", "-1"])


def test_a_dataset_without_a_dev_split_falls_back_to_a_plain_run(caplog: pytest.LogCaptureFixture) -> None:
    """A dataset may or may not hold a validation split: known only once it is read."""
    *_, args = parse_config(["--dataset_path", "saved"])
    assert args.default_schedule and args.early_stopping_patience == DEFAULT_PATIENCE
    assert args.save_total_limit == 1  # a default run keeps the best checkpoint, not one per epoch
    caplog.set_level(logging.INFO, logger="nerfocal")
    settle_default_schedule(args, has_dev=False)
    assert (args.num_train_epochs, args.early_stopping_patience, args.load_best_model_at_end) == (
        3.0,
        None,
        False,
    )
    assert str(args.eval_strategy.value) == "no" and str(args.save_strategy.value) == "no"
    assert "no dev split in the data: 3 epochs without early stopping" in caplog.text
    # the user's own patience is never dropped: without a dev set it is an error
    *_, own = parse_config(["--dataset_path", "saved", "--early_stopping_patience", "3"])
    settle_default_schedule(own, has_dev=False)
    assert own.early_stopping_patience == 3 and own.save_total_limit is None
    with pytest.raises(ValueError, match="early_stopping_patience: needs a development set"):
        require_dev_set(None)


def test_a_run_that_sets_no_schedule_early_stops_and_keeps_the_best_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """End to end: no epochs and no patience given; dev F1 scripted to peak at the 2nd evaluation, so the
    run must stop after the 4th (patience 2) of up to 10 and load the 2nd epoch's checkpoint."""
    scripted = [0.10, 0.50, 0.30, 0.20, 0.90, 0.95, 0.96, 0.97, 0.98, 0.99]
    make = nerfocal.evaluate.make_compute_metrics

    def scripted_metrics(*args: Any, **kwargs: Any) -> Any:
        real, calls = make(*args, **kwargs), iter(scripted)
        return lambda eval_pred: {**real(eval_pred), "f1": next(calls)}

    monkeypatch.setattr(nerfocal.evaluate, "make_compute_metrics", scripted_metrics)
    encoder = build_tiny_model(tmp_path / "encoder")
    argv = _argv(tmp_path, encoder)  # test_early_stopping's tiny run, less its fixed epoch count
    i = argv.index("--num_train_epochs")
    del argv[i : i + 2]
    caplog.set_level(logging.INFO, logger="nerfocal")
    result = train(*parse_config(argv))
    assert result.status == 0
    assert "no schedule set: up to 10 epochs with early stopping on dev f1 (patience 2)" in caplog.text
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert [h["eval_f1"] for h in state["log_history"] if "eval_f1" in h] == scripted[:4]
    assert result.metrics is not None and result.metrics["train"]["best_epoch"] == pytest.approx(2.0)
    saved = (tmp_path / "run" / "nerfocal_config.yaml").read_text()
    # the resolved schedule is written out, so passing the file back reproduces the run
    assert "early_stopping_patience: 2\n" in saved and "num_train_epochs: 10.0\n" in saved
