"""``nerfocal tune``: a budgeted search, on the dev set only, over the settings that matter for focal loss.

Each trial is one :func:`nerfocal.training.train` run with early stopping on dev entity F1; optuna's TPE
sampler proposes the next settings from the finished trials. The study is kept in
``OUTPUT_DIR/study.db`` (SQLite), so an interrupted search resumes where it stopped: finished trials
are never rerun, and ``--trials N`` means N finished trials in all. The test set is never read by a
trial (``test_file`` is dropped from every trial), so choosing the best trial cannot look at it.

Outputs in ``OUTPUT_DIR``: ``trials.md`` (every trial sorted by dev F1), ``best.yaml`` (the best
trial's configuration, which ``nerfocal train`` takes as is, with the test file restored and its own
output directory), ``trials.png`` (dev F1 per trial), and ``trial-K/`` (each trial's metrics; weights
removed to save disk).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from nerfocal.tune_space import (  # noqa: F401 (DEFAULT_SPACE, check_space: this module's API too)
    DEFAULT_SPACE,
    baseline_point,
    check_space,
    load_space,
    suggest,
)

logger = logging.getLogger("nerfocal")

# what a study maximises: a dev score of every trial's best checkpoint (also its early-stopping metric)
OBJECTIVES = {
    "f1": "entity F1",
    "macro_f1": "macro F1",
    "viterbi_f1": "entity F1, Viterbi",
    "viterbi_macro_f1": "macro F1, Viterbi",
}


def check_objective(objective: str) -> str:
    """``objective`` if it is one of :data:`OBJECTIVES`.

    Raises:
        ValueError: naming ``--objective`` and the choices.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


BASELINE = "baseline"  # user attribute of the trial that is the base configuration's own recipe


def startup_trials(trials: int) -> int:
    """Random trials before TPE takes over: a third of the budget, at least 3 (optuna's default is 10)."""
    return max(3, trials // 3)


def flags(values: dict[str, Any]) -> list[str]:
    """Training flags (``--name value``) of a trial's settings; ``None`` is written ``none``."""
    out: list[str] = []
    for name, value in values.items():
        out += [f"--{name}", "none" if value is None else str(value)]
    return out


def tune(
    argv: list[str],
    trials: int,
    output_dir: str | Path,
    *,
    space_file: str | None = None,
    patience: int = 2,
    seed: int = 0,
    workers: int = 1,
    objective: str = "f1",
    baseline: bool = True,
) -> Any:
    """Run (or resume) the study until it holds ``trials`` finished trials; returns the optuna study.

    Args:
        argv: ``[CONFIG.yaml] [--flag value ...]`` as for ``nerfocal train`` (the base of every trial).
        trials: finished trials wanted in all (the ones already in the study count).
        output_dir: where the study, the table, the best config and the trial folders go.
        space_file: a YAML search space; default :data:`DEFAULT_SPACE`.
        patience: early stopping patience of every trial (unless the base config sets one).
        seed: the sampler's seed (offset by the trials already in the study, so a resumed or a second
            process does not propose the first process's random trials again).
        workers: processes that train trials side by side on the same study (this one and
            ``workers - 1`` started here), each with its share of the CPU threads. Several
            ``nerfocal tune`` commands on the same study directory also share its trials.
        objective: the dev score maximised (:data:`OBJECTIVES`); every trial also early-stops and
            keeps its checkpoint by it. A study keeps the objective it was started with.
        baseline: a new study's first trial is the base configuration's own recipe (its values of the
            searched settings), so the study measures the search against it on dev; skipped, with a
            warning, when a value lies outside the space.
    """
    check_objective(objective)
    try:
        import optuna
    except ImportError:
        raise ValueError("nerfocal tune needs optuna: pip install 'nerfocal[tune]'") from None

    from nerfocal.config import build_parser, parse_config
    from nerfocal.schedule import has_dev_source
    from nerfocal.training import train

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = {a.dest for a in build_parser()._actions}
    space = load_space(space_file, known)
    base = parse_config(list(argv))
    if not has_dev_source(vars(base[1])):
        raise ValueError("nerfocal tune: needs a development set (validation_file): trials are chosen on it")
    # the config's own patience, else --patience (a default schedule's patience is not the user's)
    own = base[3].early_stopping_patience and not base[3].default_schedule
    extra = [] if own else ["--early_stopping_patience", str(patience)]
    extra += ["--metric_for_best_model", objective]  # each trial keeps its best checkpoint by the objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the heartbeat marks a trial whose process died as failed (after the grace period), so it no
    # longer counts as running for the other workers of the study
    with warnings.catch_warnings():  # the heartbeat is marked experimental in optuna 4 and 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{out / 'study.db'}", engine_kwargs={"connect_args": {"timeout": 60}},
            heartbeat_interval=60, grace_period=300,
        )  # fmt: skip
    # the study is created before any worker starts, so they never race to create it
    created = optuna.create_study(
        study_name="nerfocal", storage=storage, direction="maximize", load_if_exists=True
    )
    existing = len(created.trials)
    recorded = created.user_attrs.get("objective", "f1" if existing else None)  # older studies: dev F1
    if recorded is None:
        created.set_user_attr("objective", objective)
    elif recorded != objective:
        raise ValueError(
            f"--objective {objective}: the study in {out} maximises {recorded}; pass --objective {recorded} "
            "to resume it, or another --study-dir"
        )
    if baseline and not existing:  # a new study only: a resumed one keeps the trials it was started with
        _enqueue_baseline(created, base, space)
    study = optuna.load_study(
        study_name="nerfocal",
        storage=storage,
        # TPE's default of 10 random trials first would make a 12-trial budget a random search: a third
        # of the budget (at least 3) explores at random, the rest is guided by the finished trials;
        # constant_liar keeps side-by-side workers from proposing the same point
        sampler=optuna.samplers.TPESampler(
            seed=seed + existing, n_startup_trials=startup_trials(trials), constant_liar=workers > 1
        ),
    )

    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING

    def run_trial(trial: Any) -> float:
        # side-by-side workers: a trial that would go over the budget gives way to the earlier ones
        ahead = sum(
            1 for t in study.get_trials(deepcopy=False)
            if t.state == complete or (t.state == running and t.number < trial.number)
        )  # fmt: skip
        if ahead >= trials:
            raise optuna.TrialPruned("the budget is taken by finished and running trials")
        values = suggest(trial, space)
        folder = out / f"trial-{trial.number}"
        shutil.rmtree(folder, ignore_errors=True)  # a trial interrupted earlier starts afresh
        configs = parse_config([*argv, *extra, *flags(values), "--output_dir", str(folder)])
        configs[1].test_file = None  # trials never read the test set
        result = train(*configs)
        if result.status != 0 or not result.metrics or "validation" not in result.metrics:
            raise RuntimeError(f"trial {trial.number} stopped (status {result.status})")
        trial.set_user_attr("best_epoch", result.metrics["train"].get("best_epoch"))
        trial.set_user_attr("train_seconds", result.metrics["train"].get("train_runtime"))
        for weights in [*folder.glob("checkpoint-*"), *folder.glob("*.safetensors")]:
            shutil.rmtree(weights) if weights.is_dir() else weights.unlink()
        return float(result.metrics["validation"][objective])

    others = _start_workers(argv, trials, out, space_file, patience, seed, workers, objective)
    try:
        # a trial whose process was killed (not Ctrl-C) stays "running" in the study; once its heartbeat
        # is stale it is failed here, so that it does not take a place in the budget of the resumed study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        states = (complete, running)
        started = sum(1 for t in study.trials if t.state in states)
        if started < trials:
            # stop once finished + running trials (this worker's and the others') reach the budget
            stop = optuna.study.MaxTrialsCallback(trials, states=states)
            study.optimize(run_trial, n_trials=trials - started, catch=(RuntimeError,), callbacks=[stop])
    except BaseException:
        for proc, _ in others:
            proc.terminate()
        raise
    for proc, log in others:
        if proc.wait() != 0:
            raise ValueError(f"a tune worker stopped with status {proc.returncode}: see {log}")
    write_outputs(study, out, argv)
    return study


def _enqueue_baseline(study: Any, configs: tuple[Any, ...], space: dict[str, dict[str, Any]]) -> None:
    point, why_not = baseline_point(configs, space)
    if point is None:
        logger.warning("nerfocal tune: no baseline trial: %s (every trial is sampled)", why_not)
        return
    study.enqueue_trial(point, user_attrs={BASELINE: True})


def _start_workers(
    argv: list[str],
    trials: int,
    out: Path,
    space_file: str | None,
    patience: int,
    seed: int,
    workers: int,
    objective: str,
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``workers - 1`` more ``nerfocal tune`` processes on this study (logs ``worker-K.log``)."""
    if workers <= 1:
        return []
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(int(threads))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    started = []
    for k in range(1, workers):
        cmd = [
            sys.executable, "-m", "nerfocal.cli", "tune", "--trials", str(trials), "--study-dir", str(out),
            "--patience", str(patience), "--sampler-seed", str(seed + 7919 * k), "--objective", objective,
            *(["--search-space", space_file] if space_file else []), *argv,
        ]  # fmt: skip
        log = out / f"worker-{k}.log"
        with log.open("wb") as handle:
            started.append((subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env), log))
    return started


def write_outputs(study: Any, out: Path, argv: list[str]) -> None:
    """``trials.md``, ``best.yaml`` and ``trials.png`` from the finished trials."""
    import optuna
    import yaml

    from nerfocal.io import write_text

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ValueError(f"{out}: no finished trial to report")
    ranked = sorted(finished, key=lambda t: t.value, reverse=True)
    names = list(dict.fromkeys(n for t in ranked for n in t.params))  # a trial without alpha lacks some
    label = OBJECTIVES[study_objective(study)]
    lines = [
        f"# nerfocal tune: {len(finished)} trials, sorted by dev {label} (the test set is never used)",
        "",
        *([line, ""] if (line := baseline_line(study, label)) else []),
        f"| rank | trial | dev {label} | best epoch | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for rank, t in enumerate(ranked, 1):
        cells = " | ".join(f"{t.params.get(n)!s}" for n in names)
        epoch = t.user_attrs.get("best_epoch")
        number = f"{t.number} (base config)" if t.user_attrs.get(BASELINE) else str(t.number)
        lines.append(
            f"| {rank} | {number} | {100 * t.value:.2f} | {epoch if epoch is not None else ''} | {cells} |"
        )
    write_text(out / "trials.md", "\n".join(lines) + "\n")
    best = ranked[0]
    config = yaml.safe_load(
        (out / f"trial-{best.number}" / "nerfocal_config.yaml").read_text(encoding="utf-8")
    )
    from nerfocal.config import parse_config

    base = parse_config(list(argv))
    config["test_file"] = base[1].test_file
    config["output_dir"] = str(out / "best")
    for key in ("logging_dir", "resume_from_checkpoint"):
        config.pop(key, None)
    write_text(out / "best.yaml", yaml.safe_dump(config, sort_keys=False))
    _plot(finished, out / "trials.png", label)


def baseline_trial(study: Any) -> Any:
    """The finished trial that ran the base configuration's own recipe, or None."""
    import optuna

    complete = optuna.trial.TrialState.COMPLETE
    return next((t for t in study.trials if t.user_attrs.get(BASELINE) and t.state == complete), None)


def baseline_line(study: Any, label: str = OBJECTIVES["f1"]) -> str | None:
    """One sentence: the best trial against the base configuration's own recipe, on dev (None: the
    study has no finished baseline trial)."""
    base, best = baseline_trial(study), study.best_trial
    if base is None:
        return None
    if best.number == base.number:
        return (
            f"No trial beat the base configuration's own recipe (trial {base.number}, dev {label} "
            f"{100 * base.value:.2f}): best.yaml is that recipe."
        )
    return (
        f"The best trial, {best.number}, scored {100 * (best.value - base.value):+.2f} dev {label} over the "
        f"base configuration's own recipe (trial {base.number}, {100 * base.value:.2f})."
    )


def study_objective(study: Any) -> str:
    """The dev score ``study`` maximises (studies from before ``--objective``: ``f1``)."""
    return str(study.user_attrs.get("objective", "f1"))


def _plot(trials: list[Any], path: Path, label: str = OBJECTIVES["f1"]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no trials.png (pip install 'nerfocal[plot]')")
        return
    from nerfocal.io import write_bytes
    from nerfocal.report.plots import png_bytes

    fig, ax = plt.subplots(figsize=(6, 3.5))
    numbers = [t.number for t in trials]
    values = [100 * t.value for t in trials]
    ax.plot(numbers, values, "o", label="trial")
    best = [max(values[: i + 1]) for i in range(len(values))]
    ax.step(numbers, best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"dev {label} (%)")
    ax.set_title("nerfocal tune")
    ax.legend()
    fig.tight_layout()
    write_bytes(path, png_bytes(fig))
    plt.close(fig)
