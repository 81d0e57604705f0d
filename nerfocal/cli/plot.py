"""Draw figures as PNG files (matplotlib, headless).

    nerfocal plot losses [--output losses.png]
        loss against the true-class probability p_t: cross-entropy, focal loss for several gamma,
        the margin and soft-margin losses (the figure the focal-loss argument is made with)
    nerfocal plot training OUTPUT_DIR [--output OUTPUT_DIR/training.png]
        training and eval loss, learning rate and dev F1 against the step, from trainer_state.json,
        with the cross-entropy -> focal switch marked

Needs matplotlib: pip install 'nerfocal[plot]'.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

MISSING_MATPLOTLIB = "matplotlib is not installed; install it with: pip install 'nerfocal[plot]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    losses = sub.add_parser(
        "losses", help="loss against the true-class probability for CE, focal, margin and soft margin"
    )
    losses.add_argument(
        "--output", default="losses.png", metavar="FILE", help="PNG file (default losses.png)"
    )
    losses.add_argument(
        "--gammas",
        type=float,
        nargs="+",
        default=[0.5, 1.0, 2.0, 5.0],
        metavar="G",
        help="focal-loss gammas to draw (default 0.5 1 2 5)",
    )
    losses.add_argument("--margin", type=float, default=0.6, help="m of the margin losses (default 0.6)")
    losses.add_argument("--k", type=float, default=10.0, help="sharpness of the soft margin (default 10)")
    training = sub.add_parser("training", help="loss, learning rate and dev F1 over the steps of a run")
    training.add_argument("output_dir", metavar="OUTPUT_DIR", help="training output directory")
    training.add_argument(
        "--output", default=None, metavar="FILE", help="PNG file (default OUTPUT_DIR/training.png)"
    )


def find_trainer_state(run_dir: Path) -> Path:
    """``trainer_state.json`` of a run, or of its latest ``checkpoint-N`` when the run did not finish."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such output directory")
    if (run_dir / "trainer_state.json").is_file():
        return run_dir / "trainer_state.json"
    checkpoints = [
        p / "trainer_state.json"
        for p in run_dir.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    if not checkpoints:
        raise FileNotFoundError(f"{run_dir}: no trainer_state.json (nor in a checkpoint-N folder)")
    return max(checkpoints, key=lambda p: int(p.parent.name.split("-")[-1]))


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("matplotlib") is None:
        sys.stderr.write(f"nerfocal plot: error: {MISSING_MATPLOTLIB}\n")
        return 2
    from nerfocal.report import plots

    if args.figure == "losses":
        if any(g < 0 for g in args.gammas):
            raise ValueError(f"expected gammas >= 0, got {args.gammas}")
        plots.plot_losses(args.output, gammas=args.gammas, margin=args.margin, k=args.k)
        output = Path(args.output)
    else:
        run_dir = Path(args.output_dir)
        state_path = find_trainer_state(run_dir)
        try:
            history = json.loads(state_path.read_text(encoding="utf-8"))["log_history"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{state_path}: expected a trainer state with a log_history ({err})") from None
        output = Path(args.output) if args.output else run_dir / "training.png"
        plots.plot_training(history, output, title=f"Training curves: {run_dir.resolve().name}")
    sys.stdout.write(f"wrote {output}\n")
    return 0
