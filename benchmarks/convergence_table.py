"""The convergence tables' cells: seed means ± std, time to the best checkpoint, comparisons with
the reference recipe (over the seeds both rows ran). No state: convergence.py renders with these."""

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
