"""Accuracy at convergence: every row trained up to E epochs with early stopping on dev entity F1.

    python benchmarks/benchmark.py convergence --datasets wnut17 conll2003_1 conll2003_5 --seeds 1 2 3
    python benchmarks/benchmark.py convergence --cached-only        # the tables from the finished runs

Protocol (the same for every row, the reference recipe included):
    * up to ``--epochs`` epochs (10 by default; 4 for the full CoNLL-2003), evaluation every epoch,
      early stopping with patience 2 on dev entity F1 (nerfocal's ``early_stopping_patience``; the
      reference gets transformers' own ``EarlyStoppingCallback``), the best dev checkpoint kept;
    * the learning rate of each row chosen on dev F1 from ``--lrs`` with seed 1, the grid widened one
      rate at a time along the ladder (``--lr-ladder`` with ``--lrs``) while the best rate sits at its
      edge, until it is inside or the ladder ends (with --cached-only: until a rate has not run;
      ``--no-widen`` turns that off); seeds 2 and 3 then run at the chosen rate (so the lr choice never
      looks at the test set, nor at seeds 2-3);
    * CoNLL-2003 subsets: a fixed random sample (seed 0) of 1%, 5% or 25% of the training sentences,
      the same file for every row; dev and test are always the full sets.

Finished runs are appended to ``benchmarks/results/convergence.jsonl`` (committed: metrics and the dev
curve, no weights) and never retrained unless ``--force``; the command can be stopped at any time and
resumed: a run stopped mid-way continues from its latest epoch checkpoint (its time-to-best is then
unknown and shown as nan). Model checkpoints are deleted after each run (only the metrics are kept).
Several processes may share a work folder (each with its own ``--datasets`` / ``--rows``): a run that
another one is training (its folder's ``.lock`` held) is skipped, never resumed twice. ``--cached-only``
trains nothing and needs neither ../shared/data nor a model: the section and its figures (learning
curve over the CoNLL-2003 sizes, dev F1 per epoch; ``convergence_plots.py``, into docs/img) come from
the jsonl alone.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import convergence_plots
import convergence_tune
from common import (
    DATASETS,
    DOC,
    ROOT,
    command_line,
    keep_metrics_only,
    machine,
    mean_std,
    nerfocal_command,
    reference_command,
    run,
    run_lock,
    write_section,
)
from convergence_table import (
    against,
    grid_line,
    ladder,
    mean_time_to_best,
    next_rate,
    rarest,
    shared_seeds,
    viterbi_cell,
    widening,
)

RESULTS = ROOT / "benchmarks" / "results" / "convergence.jsonl"
IMG = ROOT / "docs" / "img"  # the figures of the rendered section
BUSY: set[tuple[str, str]] = set()  # (dataset, row) with a run that another process is training

# dataset key -> (base dataset, share of the training sentences)
SUBSETS: dict[str, tuple[str, float]] = {
    "wnut17": ("wnut17", 1.0),
    "conll2003_1": ("conll2003", 0.01),
    "conll2003_5": ("conll2003", 0.05),
    "conll2003_25": ("conll2003", 0.25),
    "conll2003": ("conll2003", 1.0),
}

# row -> (description, flags of scripts/train_ner.py; None = the reference recipe)
ROWS: dict[str, tuple[str, list[str] | None]] = {
    "reference_ce": ("reference recipe (run_ner.py: Trainer + built-in CE) + EarlyStoppingCallback", None),
    "default": ("nerfocal's default recipe (focal gamma 2 + prior init)", []),
    "default_obias": (
        "nerfocal's default recipe + O bias fitted on dev (`o_bias auto`)",
        ["--o_bias", "auto"],
    ),
    "ce": ("nerfocal CE", ["--loss", "ce", "--prior_init", "false"]),
    "focal": ("focal, gamma 2, no prior init", ["--loss", "focal", "--prior_init", "false"]),
    "focal_alpha_o": ("focal + prior init + alpha 0.75 (O-heavy)", ["--alpha", "0.75"]),
    "focal_alpha_auto": ("focal + prior init + alpha auto", ["--alpha", "auto"]),
    "focal_alpha_o_norm": (
        "focal + prior init + alpha 0.75, normalised",
        ["--alpha", "0.75", "--alpha_normalization", "prior"],
    ),
    "focal_alpha_auto_norm": (
        "focal + prior init + alpha auto, normalised",
        ["--alpha", "auto", "--alpha_normalization", "prior"],
    ),
    # its flags and learning rate come from the search (convergence_tune.py), not from --lrs
    convergence_tune.TUNED: ("the recipe `nerfocal tune` found on dev (see the note below the table)", []),
}
FULL_SET_ROWS = ("reference_ce", "default", "ce", "focal")


def subset_train_file(dataset: str, work: Path) -> Path:
    """The training file of ``dataset``: the full file, or a seeded sample of its sentences."""
    base, share = SUBSETS[dataset]
    source = Path(DATASETS[base]["dir"]) / "train.txt"
    if share >= 1.0:
        return source
    target = work / "data" / f"{dataset}.train.txt"
    if target.is_file():
        return target
    blocks, current = [], []
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = []
        elif not line.startswith("-DOCSTART-"):
            current.append(line)
    if current:
        blocks.append(current)
    chosen = sorted(random.Random(0).sample(range(len(blocks)), max(1, round(share * len(blocks)))))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join("\n".join(blocks[i]) + "\n\n" for i in chosen), encoding="utf-8")
    return target


def load_results() -> dict[str, dict[str, Any]]:
    if not RESULTS.is_file():
        return {}
    runs = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["key"]: r for r in runs}


def _key(dataset: str, row: str, lr: float, seed: int, epochs: float) -> str:
    return f"{dataset}/{row}/lr{lr:g}/seed{seed}/ep{epochs:g}"


def _epochs(dataset: str, args: Any) -> float:
    return float(args.epochs if SUBSETS[dataset][1] < 1.0 or dataset == "wnut17" else args.full_epochs)


def run_one(
    dataset: str, row: str, lr: float, seed: int, args: Any, work: Path, tuned: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Train (or reuse) one run; None with --cached-only when it does not exist.

    ``tuned``: the search's outcome for the ``tuned`` row (``convergence_tune.best_settings``); its best
    trial is part of the key, so a longer search that finds another best trial trains afresh.
    """
    epochs = _epochs(dataset, args)
    key = _key(dataset, row if tuned is None else f"{row}@trial{tuned['best_trial']}", lr, seed, epochs)
    done = load_results()
    if (key in done and not args.force) or args.cached_only:
        return None if args.force else done.get(key)
    out = work / key
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out) as lock:
        if lock is None:
            print(f"[convergence] {key}: another process is training it ({out / '.lock'} held); skipped")
            BUSY.add((dataset, row))
            return None
        done = load_results()  # that process may have finished it while this one looked
        if key in done and not args.force:
            return done[key]
        return _train(dataset, row, lr, seed, work, key, epochs, tuned, lock)


def _train(
    dataset: str, row: str, lr: float, seed: int, work: Path, key: str, epochs: float,
    tuned: dict[str, Any] | None, lock: tuple[int, ...],
) -> dict[str, Any]:  # fmt: skip
    """The training behind :func:`run_one` into ``work / key``, whose lock ``lock`` (passed on to the
    training command, which then holds it too) this process holds."""
    out = work / key
    base = SUBSETS[dataset][0]
    train_file = subset_train_file(dataset, work)
    flags = ROWS[row][1] if tuned is None else tuned["flags"]
    common = ["--seed", str(seed)]
    if flags is None:
        cmd = reference_command(
            base, out, "--epochs", str(epochs), "--lr", str(lr), "--batch-size", "32",
            "--early-stopping-patience", "2", "--train-file", str(train_file), *common,
        )  # fmt: skip
    else:
        cmd = nerfocal_command(
            base, out, "--train_file", str(train_file), "--num_train_epochs", str(epochs),
            "--learning_rate", str(lr), "--early_stopping_patience", "2", "--unknown_labels", "O",
            "--logging_steps", "10", *common, *flags,
        )  # fmt: skip
    # a run stopped before it finished (a session's end) continues from its latest epoch checkpoint
    resumed = any((c / "trainer_state.json").is_file() for c in out.glob("checkpoint-*"))
    if resumed:
        cmd += ["--resume"] if flags is None else ["--resume_from_checkpoint", "auto"]
    elif flags is not None:
        cmd += ["--overwrite_output_dir", "true"]  # the leftovers of a run killed before its 1st epoch
    print(f"[convergence] {key}{' (resumed)' if resumed else ''}", flush=True)
    log = out / ("log_resumed.txt" if resumed else "log.txt")
    run(cmd, log, env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}, pass_fds=lock)
    results = json.loads((out / "eval_results.json").read_text())
    state_file = out / "trainer_state.json"
    history = results.get("log_history")
    if history is None and state_file.is_file():
        history = json.loads(state_file.read_text())["log_history"]
    record = {
        "key": key,
        "dataset": dataset,
        "row": row,
        "lr": lr,
        "seed": seed,
        "epochs": epochs,
        "train": results["train"],
        "resumed": resumed,  # train_runtime then covers only the resumed part
        "validation": results["validation"],
        "test": results["test"],
        "dev_curve": [(h["epoch"], h["eval_f1"]) for h in history or [] if "eval_f1" in h],
    }
    if tuned is not None:
        record["tune"] = tuned  # the search behind the row, for --cached-only tables
    return keep_metrics_only(RESULTS, record, out)


def lr_grid(dataset: str, row: str, args: Any, work: Path) -> dict[float, float]:
    """Seed-1 dev F1 at each rate of ``args.lrs`` (runs what is missing; with --cached-only, the rates
    that ran). The row's rate is the best of these: chosen on dev, with seed 1 only.

    Unless ``--no-widen``: where the best rate sits at an edge of the rates run, the next rate of the
    ladder (``--lr-ladder`` and ``--lrs``) beyond that edge runs too, until the best is inside the
    grid or the ladder ends (with --cached-only, until that rate has not run)."""
    scores: dict[float, float] = {}

    def add(lr: float) -> bool:
        result = run_one(dataset, row, lr, 1, args, work)
        if result is not None:
            scores[lr] = result["validation"]["f1"]
        return result is not None

    for lr in args.lrs:
        add(lr)
    if args.widen:
        while scores and (beyond := next_rate(scores, ladder(args))) is not None and add(beyond):
            pass
    return scores


def default_dev_f1(
    dataset: str, grids: dict[tuple[str, str], dict[float, float]], args: Any, work: Path
) -> float | None:
    """The default recipe's seed-1 dev F1 at its chosen rate: from its grid, or (the default not among
    --rows) from the runs that exist, training nothing."""
    scores = grids.get((dataset, "default"))
    if scores is None:
        scores = lr_grid(dataset, "default", SimpleNamespace(**{**vars(args), "cached_only": True}), work)
    return max(scores.values(), default=None)


def main(args: Any) -> None:
    work = Path(args.work_dir)
    BUSY.clear()  # the runs found busy by this call only (a process may call main more than once)
    table: dict[str, dict[str, list[dict[str, Any]]]] = {}
    chosen: dict[tuple[str, str], float] = {}
    tuned: dict[str, dict[str, Any]] = {}  # dataset -> the search's outcome
    grids: dict[tuple[str, str], dict[float, float]] = {}  # (dataset, row) -> lr -> seed-1 dev F1
    notes: dict[str, list[str]] = {}
    # seed 1 of every row and lr first, then the other seeds: partial results are already comparable
    for dataset in args.datasets:
        rows = [r for r in (args.rows or list(ROWS)) if dataset != "conll2003" or r in FULL_SET_ROWS]
        rows.sort(key=lambda r: r == convergence_tune.TUNED)  # last: its note reads the default's grid
        for row in rows:
            if row == convergence_tune.TUNED:
                trials = convergence_tune.run_search(
                    dataset, SUBSETS[dataset][0], subset_train_file(dataset, work) if not args.cached_only
                    else Path(), _epochs(dataset, args), args, work,
                )  # fmt: skip
                best = convergence_tune.best_settings(trials)
                saved = convergence_tune.from_results(
                    [r for r in load_results().values() if r["dataset"] == dataset]
                )
                if saved is not None and (
                    best is None or (args.cached_only and best["trials"] < args.tune_trials)
                ):
                    best = saved  # the search the row was trained from (a study can end short: failed trials)
                elif best is not None and best["trials"] < args.tune_trials and args.cached_only:
                    notes.setdefault(dataset, []).append(convergence_tune.progress_note(dataset, best, args))
                    continue
                if best is not None:
                    chosen[(dataset, row)] = best["params"]["learning_rate"]
                    tuned[dataset] = best
                    notes.setdefault(dataset, []).append(
                        convergence_tune.search_note(
                            dataset, best, default_dev_f1(dataset, grids, args, work)
                        )
                    )
                continue
            scores = grids[(dataset, row)] = lr_grid(dataset, row, args, work)
            if (dataset, row) in BUSY:  # a rate of its grid is still training elsewhere: no choice yet
                print(f"[convergence] {dataset}/{row}: its grid is not complete here; seeds 2-3 wait")
            elif scores:
                chosen[(dataset, row)] = max(scores, key=lambda lr: scores[lr])
    for dataset in args.datasets:
        for (d, row), lr in chosen.items():
            if d != dataset:
                continue
            for seed in args.seeds:
                result = run_one(
                    dataset, row, lr, seed, args, work, tuned.get(dataset) if row == "tuned" else None
                )
                if result is not None:
                    table.setdefault(dataset, {}).setdefault(row, []).append(result)
    write_section("convergence", render(table, chosen, args, notes, grids))


def render(
    table: dict[str, dict[str, list[dict[str, Any]]]],
    chosen: dict[Any, float],
    args: Any,
    notes: dict[str, list[str]] | None = None,
    grids: dict[tuple[str, str], dict[float, float]] | None = None,
) -> str:
    lines = [
        '<a id="accuracy-at-convergence"></a>',
        "",
        "## Accuracy at convergence (early stopping on dev F1)",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Protocol: MiniLM-L6, batch 32, up to {args.epochs:g} epochs ({args.full_epochs:g} on the full "
        "CoNLL-2003), evaluation every epoch, early stopping with patience 2 on dev entity F1, best dev "
        "checkpoint kept; learning rate per row chosen on seed-1 dev F1 from a grid (of "
        f"{', '.join(f'{lr:g}' for lr in args.lrs)}; the line under each table gives the rates each row ran)"
        f"{widening(args)}"
        "Test entity F1 (micro), macro F1, precision, recall, the rarest test type's F1, token ECE after "
        "temperature scaling (%), the epoch of the best checkpoint, and training seconds up to it "
        "(train_runtime x best step / steps run; the machine was shared, so only rough; a run resumed after an "
        "interruption is left out of that mean). Mean ± std over "
        "the seeds column. Last column: the same models' test F1 / macro F1 decoded with constrained "
        "Viterbi, as `nerfocal predict` decodes by default (the reference's model too, which its own recipe "
        "reads by argmax); `-` where a seed's run predates that score (2026-12-03). Runs: "
        "`benchmarks/results/convergence.jsonl`.",
        "",
    ]
    for dataset, by_row in table.items():
        reference = by_row.get("reference_ce")
        first = next(iter(by_row.values()))
        rare = rarest(first)
        lines += [
            f"### {dataset}",
            "",
            f"| row | lr | seeds | F1 | macro F1 | P | R | F1 {rare} | ECE after T | epoch | s to best "
            "| F1 / macro, Viterbi |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row, runs in by_row.items():
            test = [r["test"] for r in runs]
            lines.append(
                f"| {ROWS[row][0]} (`{row}`) | {chosen.get((dataset, row), runs[0]['lr']):g} | "
                f"{','.join(str(r['seed']) for r in runs)} | {mean_std([t['f1'] for t in test])} | "
                f"{mean_std([t['macro_f1'] for t in test])} | {mean_std([t['precision'] for t in test])} | "
                f"{mean_std([t['recall'] for t in test])} | "
                f"{mean_std([t['per_type'].get(rare, {}).get('f1', 0.0) for t in test])} | "
                f"{mean_std([t['ece'] for t in test])} | "
                f"{mean_std([r['train'].get('best_epoch') or 0 for r in runs], 1.0)} | "
                f"{mean_time_to_best(runs)} | {viterbi_cell(test)} |"
            )
        if reference:
            deltas = [
                f"{row} {against(runs, reference, 'f1')} F1 / {against(runs, reference, 'macro_f1')} macro"
                for row, runs in by_row.items()
                if row != "reference_ce" and shared_seeds(runs, reference)
            ]
            if deltas:
                lines += ["", "Against the reference recipe (seed means): " + "; ".join(deltas) + "."]
            if all("viterbi_f1" in r["test"] for r in reference):
                viterbi = [
                    f"{row} {against(runs, reference, 'viterbi_f1')}"
                    for row, runs in by_row.items()
                    if row != "reference_ce"
                    and shared_seeds(runs, reference)
                    and all("viterbi_f1" in r["test"] for r in runs)
                ]
                if viterbi:
                    lines += [
                        "",
                        "Both sides decoded with constrained Viterbi (what `nerfocal predict` does by default), "
                        "F1 against the reference read the same way: " + "; ".join(viterbi) + ".",
                    ]
        grid = grid_line(dataset, by_row, chosen, grids or {}, args)
        lines += ["", grid] if grid else []
        lines += [f"\n{note}" for note in (notes or {}).get(dataset, [])]
        lines.append("")
    shares = {d: share for d, (base, share) in SUBSETS.items() if base == "conll2003"}
    figures = convergence_plots.write_figures(table, shares, IMG, DOC.parent)
    if figures:
        lines += [
            "### Figures",
            "",
            "The learning curve: test F1 against the share of the CoNLL-2003 training sentences (log "
            "axis), seed mean ± std, rows run at two sizes or more; below it, each row's test F1 minus the "
            "reference recipe's on the same seeds (mean ± std of the paired differences). Dev F1 per "
            "epoch: the seed mean over "
            "the epochs every seed reached, each seed as a thin line; stars mark each run's best (kept) "
            "epoch. Legend: the row keys of the tables.",
            "",
            *figures,
        ]
    return "\n".join(lines)
