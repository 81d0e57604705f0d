"""Write the report of a training run: report.html (self-contained) and report.md (+ report/*.png).

The report holds the run's configuration, overall and per-type P/R/F1, a per-type F1 chart, the
training curves, a word-level confusion matrix over entity types (O included), a reliability
diagram and the most frequent error kinds (missed, spurious, wrong type, wrong boundary) with
examples. Training writes it at the end of every run; this command rebuilds it.

Examples:
    nerfocal report outputs/sample
    nerfocal report runs/conll03/best --data data/conll2003/test.txt   # a model without predictions

Figures need matplotlib (pip install 'nerfocal[plot]'); without it the report keeps its tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nerfocal.predict_options import add_context_arguments

if TYPE_CHECKING:
    from nerfocal.report.analysis import WordPredictions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="training output (or saved model) directory")
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default=None,
        help="split whose predictions_<split>.jsonl is analysed (default: test if present)",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="FILE",
        help="labelled CoNLL or JSONL file: predict it with the model (argmax) and analyse that instead",
    )
    parser.add_argument(
        "--data-format",
        choices=("auto", "conll", "jsonl"),
        default="auto",
        help="format of --data (default: jsonl for *.jsonl / *.json, else conll)",
    )
    parser.add_argument(
        "--tag-scheme",
        choices=("auto", "IOB1", "IOB2", "BIOES"),
        default="auto",
        help="scheme of the gold tags in --data, converted to the model's (default: detected)",
    )
    parser.add_argument("--encoding", default="utf-8", help="encoding of --data (default utf-8)")
    parser.add_argument("--device", default="auto", help="device for --data: cpu, cuda, ... (default auto)")
    parser.add_argument(
        "--report-dir",
        default=None,
        metavar="DIR",
        help="where report.html, report.md and report/ are written (default OUTPUT_DIR)",
    )
    parser.add_argument(
        "--format", choices=("html", "md", "both"), default="both", help="report format (default both)"
    )
    parser.add_argument("--max-examples", type=int, default=3, help="examples per error kind (default 3)")
    add_context_arguments(parser)  # --data: the document context the model reads (saved with it)


def run(args: argparse.Namespace) -> int:
    from nerfocal.io import check_not_input
    from nerfocal.report import write_report

    run_dir = Path(args.output_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such output directory")
    if importlib.util.find_spec("matplotlib") is None:
        sys.stderr.write(
            "nerfocal report: warning: matplotlib is not installed (pip install 'nerfocal[plot]'); "
            "the report has no figures\n"
        )
    words, source = None, None
    report_dir = Path(args.report_dir) if args.report_dir else run_dir
    formats = ("html", "md") if args.format == "both" else (args.format,)
    for fmt in formats:
        check_not_input(report_dir / f"report.{fmt}", args.data, option="--report-dir")
    if args.data:
        words = _predict_data(args)
        source = str(args.data)
    written = write_report(
        run_dir,
        split=args.split,
        words=words,
        source=source,
        output_dir=args.report_dir,
        formats=formats,
        max_examples=args.max_examples,
    )
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    return 0


def _predict_data(args: argparse.Namespace) -> WordPredictions:
    """Word-level argmax predictions of the model in OUTPUT_DIR on --data (gold in the model's scheme)."""
    from transformers.utils import logging as hf_logging

    from nerfocal.documents import check_input
    from nerfocal.evaluate import predict_words, read_labelled
    from nerfocal.labels import convert_tags, detect_scheme
    from nerfocal.predict import Predictor
    from nerfocal.predict_options import check_document_boundary

    check_input(args.data)
    check_document_boundary(args.document_boundary)
    sentences = read_labelled(args.data, args.data_format, args.encoding, args.document_boundary)
    tokens, gold = [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]
    hf_logging.disable_progress_bar()
    predictor = Predictor.from_pretrained(
        args.output_dir, device=args.device, decode="argmax", context_size=args.context_size,
        context_pack=args.context_pack,
    )  # fmt: skip
    source = detect_scheme(gold) if args.tag_scheme == "auto" else args.tag_scheme
    gold = [convert_tags(tags, source, predictor.scheme) for tags in gold]
    return predict_words(predictor, tokens, gold, [s.document for s in sentences])
