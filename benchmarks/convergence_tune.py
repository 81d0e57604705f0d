"""The ``tuned`` row of the convergence benchmark: the recipe ``nerfocal tune`` finds, at the same protocol.

    python benchmarks/benchmark.py convergence --datasets wnut17 --rows tuned --tune-trials 12 --seeds 1 2 3

``nerfocal tune`` runs first (``WORK/tune/DATASET``: its optuna study is resumable, so a stopped search
goes on where it stopped), on the row's training file and the full dev set, every trial at the
convergence protocol (up to E epochs, early stopping with patience 2, training seed 1) and none reads the
test set. The best trial's settings (its learning rate included, so the row skips the lr grid) then
train like any other row, for every seed. The trials' training seconds are the row's search cost.

After a search runs, or whenever the benchmark trains and finds a study the repo lacks, the study
(``study.db``, which holds every trial; ``trials.md``, ``trials.png``, ``best.yaml``) is copied to
``benchmarks/results/tune_DATASET`` to be committed with the runs. A machine without the work folder
reads that copy (a ``--cached-only`` render on a fresh clone counts the same trials), and a search
started there resumes from it instead of starting over.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from common import DATASETS, MINILM, ROOT, run

KEPT = ROOT / "benchmarks" / "results"  # tune_DATASET: the copy of each study that is committed
KEPT_FILES = ("study.db", "trials.md", "trials.png", "best.yaml")

TUNED = "tuned"


def study_dir(work: Path, dataset: str) -> Path:
    return work / "tune" / dataset


def tune_command(
    dataset: str, base: str, train_file: Path, epochs: float, trials: int, work: Path, workers: int = 1
) -> list[str]:
    """``nerfocal tune`` at the convergence protocol (dev only; training seed 1; sampler seed 0)."""
    d = DATASETS[base]
    return [
        sys.executable, "-m", "nerfocal.cli", "tune", "--trials", str(trials),
        "--study-dir", str(study_dir(work, dataset)), "--patience", "2", "--sampler-seed", "0",
        "--workers", str(workers),
        # every trial sampled: the studies in the tables predate the baseline trial, and the default
        # recipe's own runs are the row it is compared with
        "--no-baseline",
        "--model_name_or_path", MINILM, "--train_file", str(train_file),
        "--validation_file", str(Path(d["dir"]) / "dev.txt"), "--tag_scheme", str(d["tag_scheme"]),
        "--disable_tqdm", "true", "--use_cpu", "true", "--num_train_epochs", str(epochs),
        "--unknown_labels", "O", "--logging_steps", "10", "--seed", "1",
    ]  # fmt: skip


def kept_dir(dataset: str) -> Path:
    return KEPT / f"tune_{dataset}"


def _copy(source: Path, target: Path) -> None:
    """``source`` to ``target`` through nerfocal's ``atomic_open`` (never half-written); a SQLite
    database through SQLite's own backup, so that the copy is consistent even if the study is open."""
    from nerfocal.io import atomic_open

    with atomic_open(target, "wb") as out:
        if source.suffix == ".db":
            with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(":memory:")) as copy:
                src.backup(copy)
                out.write(copy.serialize())
        else:
            with source.open("rb") as handle:
                shutil.copyfileobj(handle, out)


def keep_study(work: Path, dataset: str) -> None:
    """Copy the work folder's study files that exist to ``kept_dir``."""
    for name in KEPT_FILES:
        source = study_dir(work, dataset) / name
        if source.is_file():
            kept_dir(dataset).mkdir(parents=True, exist_ok=True)
            _copy(source, kept_dir(dataset) / name)


def finished_trials(work: Path, dataset: str) -> list[Any]:
    """The study's finished trials: from the work folder, else from the committed copy (empty when
    neither exists)."""
    path = study_dir(work, dataset) / "study.db"
    if not path.is_file():
        path = kept_dir(dataset) / "study.db"
    if not path.is_file():
        return []
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="nerfocal", storage=f"sqlite:///{path}")
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def run_search(dataset: str, base: str, train_file: Path, epochs: float, args: Any, work: Path) -> list[Any]:
    """Run (or resume, or just read with --cached-only) the search; returns its finished trials."""
    if args.cached_only:
        return finished_trials(work, dataset)
    folder = study_dir(work, dataset)
    kept = kept_dir(dataset) / "study.db"
    if not (folder / "study.db").is_file() and kept.is_file():  # a fresh machine: resume the kept study
        folder.mkdir(parents=True, exist_ok=True)
        _copy(kept, folder / "study.db")
    trials = finished_trials(work, dataset)
    searched = len(trials) < args.tune_trials
    if searched:
        folder.mkdir(parents=True, exist_ok=True)
        print(f"[convergence] nerfocal tune on {dataset}: {args.tune_trials} trials", flush=True)
        cmd = tune_command(dataset, base, train_file, epochs, args.tune_trials, work, args.tune_workers)
        run(cmd, folder / "log.txt", env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if searched or not kept.is_file():  # an unchanged study is not copied again (no churn in git)
        keep_study(work, dataset)
    return finished_trials(work, dataset) if searched else trials  # the study is read again only if it grew


def best_settings(trials: list[Any]) -> dict[str, Any] | None:
    """The search's outcome: its best trial, that trial's settings and training flags, and its cost.

    None without trials. The learning rate is in ``params`` but not in ``flags`` (run_one sets it).
    """
    if not trials:
        return None
    from nerfocal.tune import flags

    best = max(trials, key=lambda t: t.value)
    params = dict(best.params)
    lr = float(params.pop("learning_rate", 1e-4))
    return {
        "trials": len(trials),
        "best_trial": best.number,
        "best_dev_f1": best.value,
        "params": {"learning_rate": lr, **params},
        "flags": flags(params),
        "search_seconds": sum(float(t.user_attrs.get("train_seconds") or 0.0) for t in trials),
    }


def from_results(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The outcome saved with the row's runs (``--cached-only`` without the study): the longest search."""
    saved = [r["tune"] for r in runs if r.get("row") == TUNED and r.get("tune")]
    return max(saved, key=lambda t: t["trials"]) if saved else None


def progress_note(dataset: str, summary: dict[str, Any], args: Any) -> str:
    """The line for a search that has not finished its trials (``--cached-only`` mid-search): no best yet."""
    return (
        f"`tuned` on {dataset}: the search is under way, {summary['trials']} of {args.tune_trials} trials "
        f"finished ({summary['search_seconds']:.0f} s of training); the row trains once they all have."
    )


def search_note(dataset: str, summary: dict[str, Any], default_dev: float | None) -> str:
    """One line under a table: what the search cost and found, against the default's seed-1 dev F1."""
    params = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary["params"].items()
    )
    line = (
        f"`tuned` on {dataset}: `nerfocal tune` ran {summary['trials']} trials (training seed 1, dev only) in "
        f"{summary['search_seconds']:.0f} s of training, on top of the row's own time; the best, trial "
        f"{summary['best_trial']}, reached dev F1 {100 * summary['best_dev_f1']:.1f} with {params}"
    )
    if default_dev is not None:
        line += (
            f", against {100 * default_dev:.1f} for the default recipe on the same seed "
            f"({100 * (summary['best_dev_f1'] - default_dev):+.1f})"
        )
    return line + "."
