"""The figures of the convergence benchmark (``benchmarks/convergence.py``), drawn from its records alone.

* ``convergence_learning_curve.png``: test entity F1 against the share of the CoNLL-2003 training
  sentences (1%, 5%, 25%, 100%; log axis), one line per row run at two sizes or more: the seed mean,
  with a band of ± one (sample) standard deviation where a size has two seeds or more. A point from
  fewer seeds than the figure's best-covered point is hollow, and its row's legend says so. Where the
  reference recipe is among the rows, a second panel draws each other row's difference from it:
  the mean over the seeds both ran of (row - reference) test F1, ± the std of those paired
  differences, so that a lead of 0.2 F1 at 83 F1 is not lost in the first panel's scale.
* ``convergence_dev_f1_<dataset>.png``: dev entity F1 after each epoch, one line per row: the seed
  mean over the epochs that every seed of the row reached (early stopping ends seeds at different
  epochs), each seed's own curve as a thin line, and a star at each run's best epoch (the
  checkpoint early stopping kept) at that run's dev F1.

Figures are drawn on matplotlib's Agg canvas and written atomically by ``nerfocal.report.plots``. A
figure that cannot be drawn (matplotlib missing, too few results, a malformed record) is skipped with
a printed reason: the benchmark never fails on a figure.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

Table = dict[str, dict[str, list[dict[str, Any]]]]  # dataset -> row -> finished runs (records)


class SkipFigure(Exception):
    """The data at hand cannot make this figure; the message says why."""


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_difference(
    runs: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> tuple[float, float, int] | None:
    """``(mean, std, n)`` of test F1 (%) minus the reference's over the seeds both ran; None if none."""
    ref = {r["seed"]: 100.0 * r["test"]["f1"] for r in reference}
    diffs = [100.0 * r["test"]["f1"] - ref[r["seed"]] for r in runs if r["seed"] in ref]
    return (*_mean_std(diffs), len(diffs)) if diffs else None


def learning_curve(
    table: Table, shares: dict[str, float], path: Path, reference: str = "reference_ce"
) -> list[str]:
    """Test F1 (%) against the training share (%) of ``shares`` (dataset key -> share in (0, 1]),
    and, when ``reference`` is drawn with other rows, each other row's seed-paired difference from it
    in a second panel.

    Returns the rows drawn.
    """
    from nerfocal.report.plots import new_figure, save_png

    series: dict[str, list[tuple[float, float, float, int]]] = {}  # row -> (share %, mean F1 %, std, seeds)
    for dataset, share in shares.items():
        for row, runs in table.get(dataset, {}).items():
            mean, std = _mean_std([100.0 * r["test"]["f1"] for r in runs])
            series.setdefault(row, []).append((100.0 * share, mean, std, len(runs)))
    lines = {row: sorted(points) for row, points in series.items() if len(points) >= 2}
    if not lines:
        raise SkipFigure("no row has test results at two or more CoNLL-2003 training sizes")
    styles = line_styles({row: [p[0] for p in points] for row, points in lines.items()})
    most = max(p[3] for points in lines.values() for p in points)
    paired = reference in lines and len(lines) > 1
    fig = new_figure(7.0, 7.4 if paired else 4.4)
    if paired:
        ax, low_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    else:
        ax, low_ax = fig.add_subplot(), None
    colors: dict[str, Any] = {}
    for row, points in lines.items():
        label, linestyle = styles[row]
        if any(p[3] < most for p in points):  # a mean from fewer seeds is provisional: the legend says so
            label += f" (hollow: under {most} seeds)"
        colors[row] = _draw(ax, points, most, label, linestyle, band=0.18)
    ticks = sorted({p[0] for points in lines.values() for p in points})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_ylabel("test entity F1 (%), mean ± std over seeds")
    ax.set_title("CoNLL-2003: test F1 at convergence against training-set size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if low_ax is not None:
        others = [r for r in lines if r != reference]
        _difference_panel(low_ax, table, shares, others, reference, colors, styles)
    (low_ax or ax).set_xlabel("share of the CoNLL-2003 training sentences")
    save_png(fig, path)
    return list(lines)


def _draw(
    ax: Any, points: list[tuple[float, float, float, int]], most: int, label: str, linestyle: str,
    *, band: float, color: Any = None,
) -> Any:  # fmt: skip
    """One row's ``(x, mean, std, n)`` points: the line, a hollow marker where ``n < most``, a ± std
    band (opacity ``band``) where any std is non-zero. Returns the line's colour."""
    x, mean, std, counts = (list(v) for v in zip(*sorted(points), strict=True))
    (line,) = ax.plot(x, mean, marker="o", label=label, linestyle=linestyle, color=color)
    few = [i for i, n in enumerate(counts) if n < most]
    if few:
        ax.plot(
            [x[i] for i in few], [mean[i] for i in few], marker="o", linestyle="none",
            markerfacecolor="white", color=line.get_color(), label="_nolegend_",
        )  # fmt: skip
    if any(std):
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=band, linewidth=0)
    return line.get_color()


def _difference_panel(
    ax: Any, table: Table, shares: dict[str, float], rows: list[str], reference: str,
    colors: dict[str, Any], styles: dict[str, tuple[str, str]],
) -> None:  # fmt: skip
    """Each row's seed-paired test-F1 difference from ``reference`` against the training share."""
    ax.axhline(0.0, color=colors[reference], linewidth=1.2)
    series: dict[str, list[tuple[float, float, float, int]]] = {}  # row -> (share %, mean, std, pairs)
    for row in rows:
        for dataset, share in shares.items():
            runs, ref = table.get(dataset, {}).get(row), table.get(dataset, {}).get(reference)
            diff = paired_difference(runs, ref) if runs and ref else None
            if diff is not None:
                series.setdefault(row, []).append((100.0 * share, *diff))
    most = max((p[3] for points in series.values() for p in points), default=0)
    for row, points in series.items():  # as in the upper panel: a difference over fewer seeds is hollow
        _draw(ax, points, most, row, styles[row][1], color=colors[row], band=0.12)
    ax.set_ylabel(f"test F1 minus {reference}\n(same seeds; mean ± std)")
    if not series:
        ax.text(0.5, 0.5, f"no row shares a seed with {reference}", transform=ax.transAxes, ha="center")
    ax.grid(alpha=0.3)


def line_styles(sizes_by_row: dict[str, list[float]]) -> dict[str, tuple[str, str]]:
    """``row -> (legend label, matplotlib line style)``: a row not run at every size drawn is dashed
    and says so, so that its line is not read as measured at the sizes it skips."""
    every = {x for sizes in sizes_by_row.values() for x in sizes}
    styles = {}
    for row, sizes in sizes_by_row.items():
        gaps = set(sizes) != every
        styles[row] = (f"{row} (dashed: not run at every size)", "--") if gaps else (row, "-")
    return styles


def _curve(record: dict[str, Any]) -> dict[float, float]:
    """Epoch -> dev F1 of one run; the first evaluation logged at an epoch counts."""
    curve: dict[float, float] = {}
    for epoch, f1 in record.get("dev_curve") or []:
        curve.setdefault(round(float(epoch), 3), float(f1))
    return curve


def dev_curves(dataset: str, by_row: dict[str, list[dict[str, Any]]], path: Path) -> list[str]:
    """Dev F1 (%) per epoch of every row of ``dataset``; stars at each run's best epoch. Returns the rows drawn."""
    from nerfocal.report.plots import new_figure, save_png

    fig = new_figure(7.0, 4.4)
    ax = fig.add_subplot()
    drawn: list[str] = []
    for row, runs in by_row.items():
        curves = [(r, c) for r in runs if (c := _curve(r))]
        if not curves:
            continue
        epochs = sorted(set.intersection(*(set(c) for _, c in curves)))
        if not epochs:
            continue
        mean = [100.0 * statistics.fmean(c[e] for _, c in curves) for e in epochs]
        seeds = len(curves)
        (line,) = ax.plot(epochs, mean, marker=".", label=f"{row} ({seeds} seed{'' if seeds == 1 else 's'})")
        for record, curve in curves:
            if seeds > 1:  # each seed faintly, also past the epochs they all reached
                x = sorted(curve)
                ax.plot(x, [100.0 * curve[e] for e in x], color=line.get_color(), alpha=0.3, linewidth=0.8)
            best = record.get("train", {}).get("best_epoch")
            if best is None:
                continue
            f1 = curve.get(round(float(best), 3), record["train"].get("best_metric"))
            if f1 is not None and math.isfinite(float(f1)):
                ax.plot([float(best)], [100.0 * float(f1)], marker="*", markersize=11, color=line.get_color())
        drawn.append(row)
    if not drawn:
        raise SkipFigure(f"no run of {dataset} has a dev curve")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev entity F1 (%)")
    ax.set_title(f"{dataset}: dev F1 per epoch (seed mean, thin: each seed; stars: best epochs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_png(fig, path)
    return drawn


def write_figures(table: Table, shares: dict[str, float], img: Path, doc_dir: Path) -> list[str]:
    """Draw every figure into ``img``; the Markdown lines linking those drawn (paths relative to ``doc_dir``).

    Never raises: a figure that cannot be drawn is skipped with a printed reason.
    """
    jobs: list[tuple[str, Path, Any]] = [
        (
            "Test F1 against the share of the CoNLL-2003 training set",
            img / "convergence_learning_curve.png",
            lambda p: learning_curve(table, shares, p),
        )
    ]
    for dataset, by_row in table.items():
        jobs.append(
            (
                f"Dev F1 per epoch, {dataset}",
                img / f"convergence_dev_f1_{dataset}.png",
                lambda p, d=dataset, b=by_row: dev_curves(d, b, p),
            )
        )
    lines: list[str] = []
    for title, path, draw in jobs:
        try:
            img.mkdir(parents=True, exist_ok=True)
            draw(path)
        except Exception as err:  # a figure never stops the benchmark
            reason = str(err) if isinstance(err, SkipFigure) else f"{type(err).__name__}: {err}"
            print(f"[convergence] figure {path.name} skipped: {reason}", flush=True)
            continue
        link = Path(os.path.relpath(path, doc_dir)).as_posix()
        lines += [f"![{title}]({link})", ""]
    return lines
