"""Figures: the loss curves of the focal-loss argument, training curves, and the report's charts.

Every figure is a ``matplotlib.figure.Figure`` drawn on the Agg canvas (no pyplot, no window, no
display needed) and written as PNG with :func:`save_png`, atomically. matplotlib is optional
(``pip install 'nerfocal[plot]'``); :func:`require_matplotlib` raises a one-line ``ModuleNotFoundError``
naming the extra when it is missing.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

GAMMAS = (0.5, 1.0, 2.0, 5.0)
DPI = 110
MISSING_MATPLOTLIB = "matplotlib is not installed; install it with: pip install 'nerfocal[plot]'"


def require_matplotlib() -> Any:
    """Import matplotlib with the non-interactive Agg backend; a clear error when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ModuleNotFoundError(MISSING_MATPLOTLIB) from None
    if "matplotlib.pyplot" not in sys.modules:  # never switch the backend under a live pyplot session
        matplotlib.use("Agg")
    return matplotlib


def new_figure(width: float, height: float) -> Any:
    """A ``Figure`` on an Agg canvas: works headless and leaves pyplot's global state alone."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def save_png(fig: Any, path: str | Path) -> bytes:
    """Render ``fig`` to PNG, write it atomically to ``path`` and return the bytes (for embedding)."""
    data = png_bytes(fig)
    from nerfocal.io import write_bytes

    write_bytes(path, data)
    return data


# ---- the focal-loss figure ---------------------------------------------------------------------


def loss_curves(
    p_t: np.ndarray, *, gammas: Sequence[float] = GAMMAS, margin: float = 0.6, k: float = 10.0
) -> dict[str, np.ndarray]:
    """Each loss as a function of the true-class probability, computed by the training code itself.

    A token with true-class probability ``p`` is the two-class logit row ``[log(1 - p), log p]`` with
    label 1; every loss here depends on the logits only through ``p_t`` (the soft margin through the
    log-odds ``log p_t - log(1 - p_t)``), so the curves hold for any number of classes.

    Args:
        p_t: float array ``[P]`` of probabilities in ``(0, 1]``.

    Returns:
        ``{legend label: float64 array [P]}``, cross-entropy first.
    """
    import torch

    from nerfocal.losses import cross_entropy_loss, focal_loss, margin_loss, soft_margin_loss

    p = np.asarray(p_t, dtype=np.float64)
    if p.ndim != 1 or not ((p > 0) & (p <= 1)).all():
        raise ValueError("expected p_t as a 1-d array of probabilities in (0, 1]")
    with np.errstate(divide="ignore"):
        logits = torch.tensor(np.stack([np.log1p(-p), np.log(p)], axis=1))  # [P, 2] float64
    labels = torch.ones(len(p), dtype=torch.long)  # [P]

    def curve(fn: Any, **params: Any) -> np.ndarray:
        return fn(logits, labels, reduction="none", **params).double().numpy()

    curves = {"cross-entropy (γ = 0)": curve(cross_entropy_loss)}
    for gamma in gammas:
        curves[f"focal γ = {gamma:g}"] = curve(focal_loss, gamma=gamma)
    curves[f"margin m = {margin:g}"] = curve(margin_loss, margin=margin)
    curves[f"soft margin m = {margin:g}, k = {k:g}"] = curve(soft_margin_loss, margin=margin, k=k)
    return curves


def plot_losses(
    path: str | Path, *, gammas: Sequence[float] = GAMMAS, margin: float = 0.6, k: float = 10.0
) -> bytes:
    """Loss against ``p_t`` for CE, focal (each gamma), margin and soft margin (Lin et al., 2017, fig. 1)."""
    p = np.linspace(0.0, 1.0, 1001)[1:]  # [P], p_t = 0 has an infinite loss
    curves = loss_curves(p, gammas=gammas, margin=margin, k=k)
    fig = new_figure(7.0, 4.6)
    ax = fig.add_subplot()
    ax.axvspan(margin, 1.0, color="0.93", zorder=0)
    ax.text(0.5 * (margin + 1.0), 4.75, "well-classified\ntokens", ha="center", va="top", fontsize=9)
    focal_colours = ["#9ecae1", "#4292c6", "#08519c", "#08306b", "#041a3d"]
    for i, (label, values) in enumerate(curves.items()):
        if label.startswith("cross"):
            style: dict[str, Any] = dict(color="black", lw=2.2)
        elif label.startswith("focal"):
            style = dict(color=focal_colours[min(i - 1, len(focal_colours) - 1)], lw=1.8)
        elif label.startswith("margin"):
            style = dict(color="#d95f02", lw=1.8, ls="--")
        else:
            style = dict(color="#7570b3", lw=1.8, ls="-.")
        ax.plot(p, values, label=label, **style)
    ax.set(xlim=(0, 1), ylim=(0, 5), xlabel="probability of the true class  $p_t$", ylabel="loss")
    ax.set_title("Focal loss down-weights tokens the model already gets right")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.82), fontsize=8.5, framealpha=0.95)
    return save_png(fig, path)


# ---- training curves ---------------------------------------------------------------------------


def training_series(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Split ``trainer_state.json``'s ``log_history`` into ``{name: (steps, values)}`` and the switches."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    keys = {
        "loss": "train loss",
        "eval_loss": "eval loss",
        "learning_rate": "learning rate",
        "eval_f1": "dev F1",
        "eval_macro_f1": "dev macro F1",
    }
    switches: list[tuple[int, str]] = []
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        if "loss_switch" in entry:
            switches.append((int(step), str(entry["loss_switch"])))
        for key, name in keys.items():
            value = entry.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                steps, values = series.setdefault(name, ([], []))
                steps.append(int(step))
                values.append(float(value))
    return {"series": series, "switches": switches}


def plot_training(
    log_history: Sequence[Mapping[str, Any]], path: str | Path, title: str = "", best_step: int | None = None
) -> bytes:
    """Training/eval loss, learning rate and dev F1 against the step, the CE -> focal switch marked, and
    the checkpoint kept by early stopping (``best_step``) starred on the dev-F1 panel."""
    parsed = training_series(log_history)
    series, switches = parsed["series"], parsed["switches"]
    if not series:
        raise ValueError("expected a log_history with logged losses or evaluations, got none")
    fig = new_figure(7.5, 7.5)
    axes = fig.subplots(3, 1, sharex=True)
    panels = [
        (axes[0], ("train loss", "eval loss"), "loss"),
        (axes[1], ("learning rate",), "learning rate"),
        (axes[2], ("dev F1", "dev macro F1"), "dev F1"),
    ]
    for ax, names, ylabel in panels:
        drawn = [name for name in names if name in series]
        for name in drawn:
            steps, values = series[name]
            marker = "o" if name.startswith(("eval", "dev")) or len(steps) < 20 else None
            ax.plot(steps, values, label=name, marker=marker, ms=3.5)
        if not drawn:
            ax.text(0.5, 0.5, f"no {ylabel} logged", ha="center", va="center", transform=ax.transAxes)
        elif ylabel == "loss":
            values = [v for name in drawn for v in series[name][1]]
            if min(values) > 0 and max(values) > 10 * min(values):
                ax.set_yscale("log")  # focal losses are far below CE: a linear axis flattens the tail
        elif ylabel == "dev F1":
            ax.set_ylim(0.0, 1.0)
        for step, _ in switches:
            ax.axvline(step, color="#d95f02", ls="--", lw=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(drawn) > 1:
            ax.legend(fontsize=8.5)
    for step, name in switches:
        axes[0].annotate(
            f"CE → {name}",
            xy=(step, 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 4),
            textcoords="offset points",
            color="#d95f02",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    dev = series.get("dev F1")
    if best_step is not None and dev and best_step in dev[0]:
        value = dev[1][dev[0].index(best_step)]
        axes[2].axvline(best_step, color="#2ca02c", ls=":", lw=1.2)
        axes[2].plot([best_step], [value], marker="*", ms=13, color="#2ca02c", ls="none", label="kept")
        axes[2].legend(fontsize=8.5)
    axes[-1].set_xlabel("optimizer step")
    fig.suptitle(title or "Training curves")
    return save_png(fig, path)


# ---- report charts -----------------------------------------------------------------------------


def plot_per_type_f1(per_type: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "") -> bytes:
    """Horizontal bars of F1 per entity type, with the support in the label."""
    types = sorted(per_type)
    fig = new_figure(6.5, 1.2 + 0.45 * max(len(types), 1))
    ax = fig.add_subplot()
    if not types:
        ax.text(0.5, 0.5, "no entity types", ha="center", va="center", transform=ax.transAxes)
    else:
        f1 = [100 * float(per_type[t]["f1"]) for t in types]
        bars = ax.barh(
            [f"{t} ({per_type[t].get('support', 0)})" for t in types], f1, color="#4292c6", height=0.6
        )
        ax.bar_label(bars, fmt="%.1f", padding=3, fontsize=9)
        ax.invert_yaxis()
    ax.set(xlim=(0, 112), xlabel="F1 (%)")
    ax.set_xticks(range(0, 101, 20))
    ax.set_title(title or "F1 per entity type (support in brackets)")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> bytes:
    """Heatmap of a ``[T, T]`` count matrix (rows gold, columns predicted), coloured by row share."""
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"expected a {n}x{n} matrix (one row per label), got {list(counts.shape)}")
    totals = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(totals, 1)  # row-normalised: O would otherwise swamp the colours
    size = 2.2 + 0.65 * n
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the gold row")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{counts[i, j]:d}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="gold")
    ax.set_title(title or f"Word-level confusion ({int(counts.sum())} words)")
    return save_png(fig, path)


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin ``(k/n, (k+1)/n]``: ``(count, accuracy, mean confidence)``, each ``[n_bins]``.

    The binning is that of :func:`nerfocal.metrics.expected_calibration_error`; empty bins hold NaN.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / count
    return count, accuracy, mean_conf


def plot_reliability(
    confidence: np.ndarray, correct: np.ndarray, path: str | Path, n_bins: int = 15, title: str = ""
) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, the diagonal, and the bin sizes."""
    from nerfocal.metrics import expected_calibration_error

    count, accuracy, mean_conf = reliability_bins(confidence, correct, n_bins)
    ece = expected_calibration_error(confidence, correct, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    fig = new_figure(5.2, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = count > 0
    left, width = edges[:-1][filled], 1 / n_bins
    top.bar(left, accuracy[filled], width, align="edge", color="#4292c6", edgecolor="white", label="accuracy")
    top.bar(
        left, mean_conf[filled], width, align="edge", fill=False, edgecolor="#d62728", lw=1.2,
        label="mean confidence",
    )  # fmt: skip
    top.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.legend(loc="upper left", fontsize=8.5)
    top.set_title(title or f"Reliability (word-level, ECE = {100 * ece:.2f}%)")
    bottom.bar(edges[:-1], count, width=1 / n_bins, align="edge", color="0.6", edgecolor="white")
    if count.max(initial=0) > 0:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        bottom.set_yscale("log")  # most words sit in the last bin; a linear axis hides the others
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        bottom.yaxis.set_minor_formatter(NullFormatter())
    bottom.set(xlabel="confidence (max probability)", ylabel="words")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return save_png(fig, path)
