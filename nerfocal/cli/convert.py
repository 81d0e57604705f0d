"""Convert NER data between CoNLL, nerfocal JSONL, Hugging Face datasets, Label Studio, doccano and spaCy.

Examples:
    nerfocal convert export.json train.conll                 # Label Studio -> CoNLL
    nerfocal convert train.conll tasks.json --to labelstudio  # CoNLL -> Label Studio (importable tasks)
    nerfocal convert data.doccano.jsonl train.conll --misaligned snap

Nothing is lost silently: spans whose edges fall inside a word and overlapping spans are listed, and
snapped, dropped or (the default) an error; the command ends with the counts. See docs/formats.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nerfocal.formats import FORMATS

    parser.add_argument("input", metavar="IN", help="input file (or dataset folder)")
    parser.add_argument("output", metavar="OUT", help="output file (or dataset folder)")
    parser.add_argument("--from", dest="from_format", choices=FORMATS, default=None, help="input format")
    parser.add_argument("--to", dest="to_format", choices=FORMATS, default=None, help="output format")
    parser.add_argument(
        "--misaligned",
        choices=("error", "snap", "drop"),
        default="error",
        help="spans inside words or overlapping: error (default, lists them all), snap to words, drop",
    )
    parser.add_argument("--text-key", default=None, help="Label Studio / doccano field holding the text")
    parser.add_argument(
        "--annotator",
        default=None,
        help="Label Studio: annotation position (0, 1, ...) or annotator id/email (default: first completed)",
    )
    parser.add_argument(
        "--tag-scheme",
        choices=("auto", "IOB1", "IOB2", "BIOES"),
        default="auto",
        help="tag scheme of word-level output (auto: the input's; IOB2 from character spans)",
    )
    parser.add_argument("--split-pattern", default=None, help="word regex for text (default: predict's)")


def run(args: argparse.Namespace) -> int:
    from nerfocal.formats import convert

    annotator = int(args.annotator) if args.annotator and args.annotator.isdigit() else args.annotator
    stats = convert(
        args.input,
        args.output,
        args.from_format,
        args.to_format,
        misaligned=args.misaligned,
        text_key=args.text_key,
        annotator=annotator,
        tag_scheme=args.tag_scheme,
        split_pattern=args.split_pattern,
    )
    print(f"nerfocal convert: {args.input} -> {args.output}: {stats.summary()}", file=sys.stderr)
    return 0
