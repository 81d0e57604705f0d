"""Tag text, CoNLL or JSONL input with a trained model, streaming (see docs/predict.md).

Examples:
    nerfocal predict --model runs/conll03/best --input news.txt --output news.entities.jsonl
    nerfocal predict --model runs/conll03/best --input test.txt --input-format conll --output-format conll
    echo "Angela Merkel visited Paris ." | nerfocal predict --model runs/conll03/best
"""

from __future__ import annotations

import argparse
import sys

from nerfocal.documents import INPUT_FORMATS, OUTPUT_FORMATS
from nerfocal.predict_options import add_model_argument, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--input", default="-", metavar="FILE", help="input file, or - for stdin (default)")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="text",
        help="text: one document per line (default); conll: token column of a CoNLL file (a gold tag "
        'column, when present, is carried to the output); jsonl: {"text": ...} or {"tokens": [...]} per line',
    )
    parser.add_argument(
        "--output", default="-", metavar="FILE", help="output file, or - for stdout (default)"
    )
    parser.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        default="jsonl",
        help="jsonl: the input record plus its entities (default); conll: token, gold tag if any, "
        "prediction; html: one self-contained page with the entities highlighted",
    )
    parser.add_argument(
        "--word-tags",
        action="store_true",
        help='JSONL output: add "pred_tags" (and "words" offsets for text)',
    )
    parser.add_argument(
        "--split-pattern",
        default=None,
        help="regex whose matches are the words of text input (see docs/predict.md)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=2048, help="documents buffered and sorted together (default 2048)"
    )
    add_model_arguments(parser, default_decode="viterbi")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nerfocal.documents import (
        check_input,
        count_documents,
        open_output,
        read_documents,
        write_predictions,
    )
    from nerfocal.io import check_not_input, text_encoding
    from nerfocal.predict_options import predictor_from_args

    documents = read_documents(args.input, args.input_format, args.encoding, args.split_pattern)
    text_encoding(args.encoding)  # fail before loading the model
    total = None
    if args.input != "-":
        check_input(args.input)
        check_not_input(args.output, args.input)
        total = None if args.quiet else count_documents(args.input, args.input_format, args.encoding)
    predictor = predictor_from_args(args, split_pattern=args.split_pattern, chunk_size=args.chunk_size)
    progress = tqdm(
        desc="predict",
        total=total,
        unit=" docs",
        file=sys.stderr,
        disable=args.quiet or args.input == "-",
        dynamic_ncols=True,
    )
    with progress, open_output(args.output) as handle:
        predictions = predictor.predict_documents(documents)
        title = f"nerfocal predict: {args.input}"
        for _ in write_predictions(handle, predictions, args.output_format, args.word_tags, title):
            progress.update()
    return 0
