"""Search, on the dev set, for the focal-loss settings that train the best model (optuna, resumable).

    nerfocal tune configs/sample.yaml --trials 12 --study-dir outputs/tune [--option value ...]
    nerfocal train outputs/tune/best.yaml            # the best trial's configuration, test set restored

Every trial trains with early stopping on the objective (--objective, default dev entity F1;
patience 2 unless the config sets one; up to 10 epochs unless it sets num_train_epochs or max_steps) and
never reads the test set. The default search space:
learning rate, gamma, prior init, CE warm-up, alpha (none, 0.75, auto) and loss (focal,
focal_adaptive, ce); --search-space FILE.yaml replaces it:

    learning_rate: {type: log, low: 2.0e-5, high: 3.0e-4}
    gamma: {type: float, low: 0.5, high: 3.0}
    alpha: {type: categorical, choices: [null, auto]}

The first trial of a new study is the base configuration's own recipe (its learning rate, gamma, ...
as given or by default), so trials.md says how much the search gains over what `nerfocal train CONFIG`
would run, and best.yaml is never a recipe that did worse on dev (--no-baseline: every trial sampled).
Interrupting keeps the finished trials; the same command resumes (--trials counts them).
--workers N trains N trials side by side on the same study (each process gets its share of the
threads); another nerfocal tune started on the same --study-dir joins the search.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="nerfocal tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12, help="finished trials wanted in all (default 12)")
    parser.add_argument("--study-dir", "--study_dir", default="outputs/tune", help="study, table, best.yaml")
    parser.add_argument("--search-space", "--search_space", default=None, help="YAML search space")
    parser.add_argument("--patience", type=int, default=2, help="early stopping patience of each trial")
    parser.add_argument(
        "--sampler-seed", "--sampler_seed", type=int, default=0,
        help="seed of optuna's sampler (default 0); --seed is the training seed of every trial",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=1, help="processes training trials side by side (default 1)"
    )
    parser.add_argument(
        "--objective", default="f1", choices=("f1", "macro_f1", "viterbi_f1", "viterbi_macro_f1"),
        help="dev score to maximise; each trial also early-stops on it (default f1; macro_f1 weighs the "
        "rare types as much as the frequent ones; viterbi_*: decoded as nerfocal predict decodes)",
    )  # fmt: skip
    parser.add_argument(
        "--no-baseline", "--no_baseline", action="store_true",
        help="do not run the base configuration's own recipe as the first trial of a new study",
    )  # fmt: skip
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        print("\nEvery other option is a training option (nerfocal train --help).")
        return 0
    args, train_argv = parser.parse_known_args(argv)
    for name in ("trials", "workers"):
        if getattr(args, name) < 1:
            print(f"nerfocal tune: error: --{name}: expected an integer >= 1", file=sys.stderr)
            return 2
    try:
        from nerfocal.tune import OBJECTIVES, baseline_line, tune

        study = tune(
            train_argv, args.trials, args.study_dir, space_file=args.search_space,
            patience=args.patience, seed=args.sampler_seed, workers=args.workers, objective=args.objective,
            baseline=not args.no_baseline,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"nerfocal tune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"nerfocal tune: interrupted; finished trials are kept in {args.study_dir}/study.db: "
            "run the same command to resume",
            file=sys.stderr,
        )
        return 130
    best = study.best_trial
    print(
        f"best trial {best.number}: dev {args.objective} {100 * best.value:.2f} with {best.params}; "
        f"train it with: nerfocal train {args.study_dir}/best.yaml"
    )
    line = baseline_line(study, OBJECTIVES[args.objective])
    if line:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
