"""The convergence tables' cells: seed means ± std, time to the best checkpoint, comparisons with
the reference recipe (over the seeds both rows ran), and the learning-rate grids' widening rule and
line. No state: convergence.py renders with these."""

from __future__ import annotations

import math
import statistics
from typing import Any

from common import mean_std


def viterbi_cell(test: list[dict[str, Any]]) -> str:
    """Test F1 / macro F1 under constrained Viterbi decoding; "-" unless every seed's run has them (runs
    before 2026-12-03 scored argmax only)."""
    if not all("viterbi_f1" in t for t in test):
        return "-"
    return f"{mean_std([t['viterbi_f1'] for t in test])} / {mean_std([t['viterbi_macro_f1'] for t in test])}"


def rarest(runs: list[dict[str, Any]]) -> str:
    """The test type with the fewest gold entities in the first run."""
    per_type = runs[0]["test"].get("per_type") or {}
    return min(per_type, key=lambda t: per_type[t].get("support", 0)) if per_type else "-"


def time_to_best(result: dict[str, Any]) -> float:
    if result.get("resumed"):
        return float("nan")  # the time before the interruption is not known
    train = result["train"]
    steps = train.get("best_step")
    total = train.get("train_steps") or train.get("global_step")
    runtime = float(train.get("train_runtime", 0.0))
    if steps and total:
        return runtime * steps / total
    return runtime


def mean_time_to_best(runs: list[dict[str, Any]]) -> str:
    """The mean over the runs whose time is known (a resumed run's is not); "-" when none is."""
    known = [t for t in map(time_to_best, runs) if not math.isnan(t)]
    return f"{statistics.fmean(known):.0f}" if known else "-"


def shared_seeds(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[int]:
    return sorted({r["seed"] for r in runs} & {r["seed"] for r in reference})


def against(runs: list[dict[str, Any]], reference: list[dict[str, Any]], field: str) -> str:
    """The row's mean ``field`` minus the reference's over the seeds both ran, named unless both ran the
    same seeds (a row on fewer or other seeds than the reference is compared on the shared ones only);
    "-" when they share none."""
    seeds = shared_seeds(runs, reference)
    if not seeds:
        return "-"
    row_mean = statistics.fmean(r["test"][field] for r in runs if r["seed"] in seeds)
    ref_mean = statistics.fmean(r["test"][field] for r in reference if r["seed"] in seeds)
    same = len(seeds) == len({r["seed"] for r in runs}) == len({r["seed"] for r in reference})
    which = "" if same else f" (seed{'s' * (len(seeds) > 1)} {','.join(map(str, seeds))})"
    return f"{100 * (row_mean - ref_mean):+.1f}{which}"


def ladder(args: Any) -> list[float]:
    """The rates a grid may widen into, in order: ``--lr-ladder`` and ``--lrs`` together."""
    return sorted(set(args.lrs) | set(args.lr_ladder))


def widening(args: Any) -> str:
    """The protocol line's clause on the grids' widening."""
    if not args.widen:
        return ". "
    rates = "" if ladder(args) == sorted(args.lrs) else f" ({', '.join(f'{lr:g}' for lr in ladder(args))})"
    return (
        f", widened one rate at a time along the ladder{rates} while the best rate sat at the grid's edge. "
    )


def next_rate(scores: dict[float, float], rates: list[float]) -> float | None:
    """The rate of ``rates`` just beyond the edge of the grid where its best rate sits (a rate alone in
    its grid goes up first); None when the best is inside the grid or at the ladder's end on its side."""
    best = max(scores, key=scores.__getitem__)
    ran = sorted(scores)
    up = [lr for lr in rates if lr > best and not math.isclose(lr, best)]
    down = [lr for lr in rates if lr < best and not math.isclose(lr, best)]
    if math.isclose(best, ran[-1]) and up and up[0] not in scores:
        return up[0]
    if math.isclose(best, ran[0]) and down and down[-1] not in scores:
        return down[-1]
    return None


def grid_line(
    dataset: str,
    by_row: dict[str, list[dict[str, Any]]],
    chosen: dict[Any, float],
    grids: dict[tuple[str, str], dict[float, float]],
    args: Any,
) -> str:
    """Each row's seed-1 dev F1 at every rate of its grid (``lr_grid``), the chosen one in bold type."""
    parts = []
    for row in by_row:
        scores = grids.get((dataset, row))
        if not scores:
            continue  # the tuned row: its rate comes from the search
        best = chosen.get((dataset, row))
        cells = [
            f"**{lr:g}: {100 * f:.1f}**"
            if best is not None and math.isclose(lr, best)
            else f"{lr:g}: {100 * f:.1f}"
            for lr, f in sorted(scores.items())
        ]
        beyond = next_rate(scores, ladder(args))
        edge = f" (at the grid's edge: {beyond:g} not run)" if beyond is not None else ""
        parts.append(f"{row} {', '.join(cells)}{edge}")
    if not parts:
        return ""
    return (
        "Learning-rate grid, seed-1 dev F1 at each rate run (**the chosen rate**; a rate of "
        f"{', '.join(f'{lr:g}' for lr in args.lrs)} that a row lacks was not run for it): "
        + "; ".join(parts)
        + "."
    )
