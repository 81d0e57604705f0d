"""`nerfocal tune`: trials on dev only, a resumable study, the best config that `nerfocal train` takes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fixtures import SAMPLE, build_tiny_model

import nerfocal.training
from nerfocal.cli import main
from nerfocal.config import parse_config

optuna = pytest.importorskip("optuna", reason="the tune extra (pip install nerfocal[tune]) is not installed")

SPACE = "learning_rate: {type: log, low: 1.0e-4, high: 3.0e-3}\ngamma: {type: float, low: 0.5, high: 3.0}\n"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tune") / "encoder")


def _argv(encoder: Path, tmp_path: Path, trials: int) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    return [
        "tune", "--trials", str(trials), "--study-dir", str(tmp_path / "study"), "--search-space", str(space),
        "--model_name_or_path", str(encoder), "--train_file", str(SAMPLE / "train.conll"),
        "--validation_file", str(SAMPLE / "dev.conll"), "--test_file", str(SAMPLE / "test.conll"),
        "--max_train_samples", "32", "--num_train_epochs", "2", "--max_length", "64",
        "--use_cpu", "true", "--disable_tqdm", "true", "--temperature_scaling", "false",
    ]  # fmt: skip


def test_tune_ranks_trials_on_dev_never_reads_test_and_writes_a_trainable_best_config(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_test_files = []
    real = nerfocal.training.train

    def spy(model_cfg, data_cfg, loss_cfg, args):  # type: ignore[no-untyped-def]
        seen_test_files.append(data_cfg.test_file)
        assert args.early_stopping_patience == 2  # early stopping in every trial
        assert args.seed == 7  # --seed is the training seed (the sampler's is --sampler-seed)
        return real(model_cfg, data_cfg, loss_cfg, args)

    monkeypatch.setattr(nerfocal.training, "train", spy)
    assert main([*_argv(encoder, tmp_path, 2), "--seed", "7", "--sampler-seed", "3"]) == 0
    assert seen_test_files == [None, None]
    study_dir = tmp_path / "study"
    table = (study_dir / "trials.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    f1 = [float(row.split("|")[3]) for row in rows]
    assert len(rows) == 2 and f1 == sorted(f1, reverse=True)
    assert not any(
        (study_dir / f"trial-{k}" / "eval_results.json").read_text().count('"test"') for k in (0, 1)
    )
    best = yaml.safe_load((study_dir / "best.yaml").read_text(encoding="utf-8"))
    assert best["test_file"] == str(SAMPLE / "test.conll")
    _, _, loss_cfg, args = parse_config([str(study_dir / "best.yaml")])
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert loss_cfg.gamma == pytest.approx(study.best_trial.params["gamma"])
    assert args.learning_rate == pytest.approx(study.best_trial.params["learning_rate"])
    assert (study_dir / "trials.png").is_file()
    assert all(t.user_attrs["train_seconds"] > 0 for t in study.trials)  # the search's cost, per trial


def test_patience_reaches_every_trial_when_the_config_sets_no_schedule(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without num_train_epochs the config gets nerfocal's default schedule (patience 2, up to 10 epochs);
    --patience must still be the trials' patience, with the 10-epoch ceiling."""
    seen = []
    real = nerfocal.training.train

    def spy(model_cfg, data_cfg, loss_cfg, args):  # type: ignore[no-untyped-def]
        seen.append((args.early_stopping_patience, args.num_train_epochs))
        args.num_train_epochs = 1.0  # keep the test short once the schedule is recorded
        return real(model_cfg, data_cfg, loss_cfg, args)

    monkeypatch.setattr(nerfocal.training, "train", spy)
    argv = _argv(encoder, tmp_path, 1)
    i = argv.index("--num_train_epochs")
    del argv[i : i + 2]
    assert main([*argv, "--patience", "3"]) == 0
    assert seen == [(3, 10.0)]


def test_an_interrupted_study_keeps_its_finished_trials_and_resumes(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = nerfocal.training.train
    calls = []

    def interrupt_second(*configs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*configs)

    monkeypatch.setattr(nerfocal.training, "train", interrupt_second)
    assert main(_argv(encoder, tmp_path, 3)) == 130
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    done = [
        t for t in optuna.load_study(study_name="nerfocal", storage=storage).trials if t.value is not None
    ]
    assert len(done) == 1
    monkeypatch.setattr(nerfocal.training, "train", real)
    assert main(_argv(encoder, tmp_path, 2)) == 0  # one more trial: 2 finished in all
    study = optuna.load_study(study_name="nerfocal", storage=storage)
    assert sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE) == 2


def test_a_trial_whose_process_was_killed_gives_its_place_in_the_budget_back(
    encoder: Path, tmp_path: Path
) -> None:
    """A killed process leaves its trial "running", its heartbeat going stale (not a Ctrl-C, which
    fails it): the resumed study still finishes as many trials as asked."""
    import sqlite3
    import warnings

    (tmp_path / "study").mkdir()
    db = tmp_path / "study" / "study.db"
    with warnings.catch_warnings():  # the heartbeat is experimental, and meant for Study.optimize
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(f"sqlite:///{db}", heartbeat_interval=60, grace_period=300)
        study = optuna.create_study(study_name="nerfocal", storage=storage, direction="maximize")
        trial = study.ask()
        storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(db) as connection:  # the heartbeat of a process killed an hour ago
        connection.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour')")
    assert main(_argv(encoder, tmp_path, 2)) == 0
    states = [t.state for t in optuna.load_study(study_name="nerfocal", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert states[0] == optuna.trial.TrialState.FAIL


def test_the_objective_is_what_trials_maximise_and_select_by_and_a_study_keeps_it(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    metrics = []
    real = nerfocal.training.train

    def spy(model_cfg, data_cfg, loss_cfg, args):  # type: ignore[no-untyped-def]
        metrics.append(args.metric_for_best_model)
        return real(model_cfg, data_cfg, loss_cfg, args)

    monkeypatch.setattr(nerfocal.training, "train", spy)
    assert main([*_argv(encoder, tmp_path, 2), "--objective", "macro_f1"]) == 0
    assert metrics == ["macro_f1", "macro_f1"]  # each trial keeps its checkpoint by the objective
    study_dir = tmp_path / "study"
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}")
    for t in study.trials:
        dev = json.loads((study_dir / f"trial-{t.number}" / "eval_results.json").read_text())["validation"]
        assert t.value == pytest.approx(dev["macro_f1"])
    assert "sorted by dev macro F1" in (study_dir / "trials.md").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main([*_argv(encoder, tmp_path, 3), "--objective", "f1"]) == 2  # resuming under another objective
    assert "--objective f1: the study in" in capsys.readouterr().err
    assert (
        len(optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}").trials)
        == 2
    )


def test_workers_share_one_study_and_stop_at_the_budget(encoder: Path, tmp_path: Path) -> None:
    # --workers 2: this process and one more share the study; 3 trials in all, not 3 each
    assert main([*_argv(encoder, tmp_path, 3), "--workers", "2"]) == 0
    study_dir = tmp_path / "study"
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3  # a trial that would go over the budget is pruned before it trains
    assert (study_dir / "worker-1.log").is_file()
    assert len({t.params["gamma"] for t in done}) == 3  # the workers' samplers are seeded apart
    rows = [line for line in (study_dir / "trials.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # header + every trial of both workers


def test_workers_below_one_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--workers", "0"]) == 2
    assert "--workers: expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("gamma: {type: float, low: 3, high: 1}\n", "gamma: expected 0 < low < high"),
        ("gama: {type: float, low: 0, high: 1}\n", "'gama' is not a training option"),
        ("loss: {type: choice, choices: [ce]}\n", "loss: expected type one of"),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_a_bad_search_space_is_a_one_line_error_naming_the_option(
    space: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(space, encoding="utf-8")
    data = ["--train_file", str(SAMPLE / "train.conll"), "--validation_file", str(SAMPLE / "dev.conll")]
    argv = ["tune", "--search-space", str(path), "--study-dir", str(tmp_path / "s"), *data]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err


def test_tune_without_a_dev_set_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tune", "--study-dir", str(tmp_path / "s"), "--train_file", str(SAMPLE / "train.conll")]
    assert main(argv) == 2
    assert "needs a development set" in capsys.readouterr().err


def test_alpha_normalization_is_searched_only_for_trials_with_an_alpha() -> None:
    import optuna

    from nerfocal.tune import DEFAULT_SPACE, suggest

    base = {"learning_rate": 1e-4, "gamma": 2.0, "prior_init": True, "ce_warmup_epochs": 0.0, "loss": "focal"}
    without = suggest(optuna.trial.FixedTrial({**base, "alpha": None}), DEFAULT_SPACE)
    assert without["alpha"] is None and "alpha_normalization" not in without
    fixed = optuna.trial.FixedTrial({**base, "alpha": "auto", "alpha_normalization": "prior"})
    assert suggest(fixed, DEFAULT_SPACE)["alpha_normalization"] == "prior"


def test_a_third_of_the_budget_explores_at_random_before_tpe() -> None:
    from nerfocal.tune import startup_trials

    assert [startup_trials(n) for n in (1, 6, 12, 30, 60)] == [3, 3, 4, 10, 20]


def test_the_base_recipe_is_a_point_of_the_space_or_says_why_not(tmp_path: Path) -> None:
    from nerfocal.tune import DEFAULT_SPACE
    from nerfocal.tune_space import baseline_point

    base = parse_config(["--learning_rate", "1e-4", "--gamma", "2", "--ce_warmup_epochs", "0.1"])
    point, _ = baseline_point(base, DEFAULT_SPACE)
    assert point == {
        "learning_rate": 1e-4,
        "gamma": 2.0,
        "prior_init": True,
        "ce_warmup_epochs": 0.1,
        "alpha": None,
        "loss": "focal",
    }  # no alpha_normalization: not searched without an alpha
    alpha = parse_config(["--alpha", "auto", "--alpha_normalization", "prior"])
    point, _ = baseline_point(alpha, DEFAULT_SPACE)
    assert point is not None and point["alpha"] == "auto" and point["alpha_normalization"] == "prior"
    assert baseline_point(parse_config(["--loss", "ce"]), {"prior_init": DEFAULT_SPACE["prior_init"]}) == (
        {"prior_init": False},
        "",
    )  # the default prior_init: off for CE
    assert baseline_point(parse_config(["--learning_rate", "5e-4"]), DEFAULT_SPACE) == (
        None,
        "its learning_rate 0.0005 is outside the search space",
    )
    assert baseline_point(parse_config(["--alpha", "0.5"]), DEFAULT_SPACE)[0] is None  # not a choice
    space = {"prior_init": {"type": "categorical", "choices": [1, 0]}}  # True is not the choice 1
    assert baseline_point(parse_config([]), space)[0] is None


def test_a_new_study_runs_the_base_recipe_first_and_says_what_the_search_gained(
    encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_argv(encoder, tmp_path, 2), "--learning_rate", "2e-4", "--gamma", "1.5"]
    assert main(argv) == 0
    study_dir = tmp_path / "study"
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}")
    first = study.trials[0]
    assert first.params == {"learning_rate": 2e-4, "gamma": 1.5} and first.user_attrs["baseline"]
    assert not study.trials[1].user_attrs.get("baseline")
    table = (study_dir / "trials.md").read_text(encoding="utf-8")
    assert "0 (base config)" in table and "base configuration's own recipe (trial 0" in table
    assert "base configuration's own recipe (trial 0" in capsys.readouterr().out
    # resumed, the study gets no second baseline; --no-baseline samples every trial of a new one
    assert main([*argv[:2], "3", *argv[3:]]) == 0
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert sum(1 for t in study.trials if t.user_attrs.get("baseline")) == 1 and len(study.trials) == 3
    other = tmp_path / "other"
    other.mkdir()
    assert main([*_argv(encoder, other, 1), "--learning_rate", "2e-4", "--no-baseline"]) == 0
    lone = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{other / 'study' / 'study.db'}")
    assert not lone.trials[0].user_attrs.get("baseline") and lone.trials[0].params["learning_rate"] != 2e-4


def test_a_base_recipe_outside_the_space_is_a_warning_and_every_trial_is_sampled(
    encoder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main([*_argv(encoder, tmp_path, 1), "--learning_rate", "5e-5"]) == 0  # SPACE starts at 1e-4
    assert "no baseline trial: its learning_rate 5e-05 is outside the search space" in caplog.text
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    assert not study.trials[0].user_attrs.get("baseline")


def test_the_shipped_small_encoder_space_is_the_default_with_another_learning_rate_range() -> None:
    from nerfocal.config import build_parser
    from nerfocal.tune_space import DEFAULT_SPACE, load_space

    known = {a.dest for a in build_parser()._actions}
    path = Path(__file__).resolve().parents[1] / "configs" / "tune" / "small_encoder.yaml"
    space = load_space(str(path), known)
    assert space["learning_rate"] == {"type": "log", "low": 5e-5, "high": 5e-4}
    assert {k: v for k, v in space.items() if k != "learning_rate"} == {
        k: v for k, v in DEFAULT_SPACE.items() if k != "learning_rate"
    }
