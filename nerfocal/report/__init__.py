"""The run report (``report.html`` + ``report.md``), its analysis, and the figures.

A training run writes ``predictions_<split>.jsonl`` (one sentence per line: ``tokens``, ``gold``,
``pred`` tags and the ``confidence`` of each predicted tag) beside ``eval_results.json``; from those
files, ``nerfocal_config.yaml`` and ``trainer_state.json`` :func:`write_report` builds:

    * ``report.html``: self-contained, figures embedded as base64 PNG;
    * ``report.md`` with the figures in ``report/*.png`` (relative links).

Modules, imports flowing one way: :mod:`.analysis` (word-level data and error analysis) <-
:mod:`.blocks` (the sections; draws figures with :mod:`.plots`) <- :mod:`.render` (HTML, Markdown) <-
this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from nerfocal.report.analysis import (
    ERROR_KINDS,
    SECTIONS,
    ErrorCase,
    WordPredictions,
    classify_errors,
    confusion_matrix,
    default_split,
    error_example,
    error_summary,
    read_predictions,
    reliability_arrays,
    write_predictions,
    write_run_predictions,
)
from nerfocal.report.blocks import build_blocks
from nerfocal.report.render import render_html, render_markdown

__all__ = [
    "ERROR_KINDS",
    "SECTIONS",
    "ErrorCase",
    "WordPredictions",
    "classify_errors",
    "confusion_matrix",
    "default_split",
    "error_example",
    "error_summary",
    "read_predictions",
    "reliability_arrays",
    "write_predictions",
    "write_report",
    "write_run_predictions",
]

logger = logging.getLogger(__name__)


def write_report(
    run_dir: str | Path,
    *,
    split: str | None = None,
    words: WordPredictions | None = None,
    source: str | None = None,
    output_dir: str | Path | None = None,
    formats: Sequence[str] = ("html", "md"),
    max_examples: int = 3,
) -> list[Path]:
    """Build the report of a training output directory; returns the files written.

    Args:
        run_dir: a training output directory (or any saved model directory when ``words`` is given).
        split: ``test`` / ``validation``; default :func:`default_split`.
        words: word-level predictions to analyse instead of ``predictions_<split>.jsonl``.
        source: what ``words`` were evaluated on, e.g. a data file; they are then scored here instead of
            read from ``eval_results.json``.
        output_dir: where ``report.html``, ``report.md`` and ``report/`` go; default ``run_dir``.
        formats: any of ``html`` and ``md``.
        max_examples: examples shown per error kind.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist.
        ValueError: nothing to report (no scores, predictions, training log or given words).
    """
    from nerfocal.io import write_text

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such output directory")
    bad = set(formats) - {"html", "md"}
    if bad or not formats:
        raise ValueError(f"expected formats among ('html', 'md'), got {list(formats)}")
    out = Path(output_dir) if output_dir is not None else run
    split = split or default_split(run)
    if words is None and split and (run / f"predictions_{split}.jsonl").is_file():
        words = read_predictions(run / f"predictions_{split}.jsonl")
    blocks = build_blocks(run, out / "report", split, words, source, max_examples)
    written = []
    if "html" in formats:
        write_text(out / "report.html", render_html(blocks))
        written.append(out / "report.html")
    if "md" in formats:
        write_text(out / "report.md", render_markdown(blocks, image_dir="report"))
        written.append(out / "report.md")
    logger.info("report written to %s", ", ".join(str(p) for p in written))
    return written
