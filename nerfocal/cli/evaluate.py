"""Seqeval report of a trained model on a labelled CoNLL or JSONL file, printed and written as JSON.

With the default ``--decode argmax`` the numbers are those of the training script's evaluation:
argmax of each word's first sub-word, tags scored with seqeval against the gold tags converted to
the model's tag scheme.

Example:
    nerfocal evaluate --model runs/conll03/best --data data/conll2003/test.txt --output test.eval.json
"""

from __future__ import annotations

import argparse
import json
import sys

from nerfocal.predict_options import add_context_arguments, add_model_argument, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--data", required=True, metavar="FILE", help="labelled CoNLL or JSONL file")
    parser.add_argument(
        "--format",
        choices=("auto", "conll", "jsonl"),
        default="auto",
        help='conll: token first column, tag last column; jsonl: {"tokens": [...], "tags": [...]} per line; '
        "auto: jsonl for *.jsonl / *.json, else conll (default)",
    )
    parser.add_argument(
        "--tag-scheme",
        choices=("auto", "IOB1", "IOB2", "BIOES", "BILOU"),
        default="auto",
        help="scheme of the gold tags, converted to the model's scheme before scoring (default: detected; "
        "BILOU L-/U- tags are read as BIOES E-/S-)",
    )
    parser.add_argument(
        "--mode",
        choices=("default", "strict"),
        default="default",
        help="seqeval mode: default (conlleval rules) or strict (exact IOB2 chunks)",
    )
    parser.add_argument(
        "--output",
        default="eval.json",
        metavar="FILE",
        help="where to write the metrics as JSON (default eval.json; an empty string writes none)",
    )
    parser.add_argument(
        "--output-format",
        choices=("nerfocal", "hf"),
        default="nerfocal",
        help="nerfocal: nerfocal's metrics (default); hf: the `evaluate` library's seqeval dictionary "
        "({TYPE: {precision, recall, f1, number}, overall_precision, ...}) for existing dashboards",
    )
    add_context_arguments(parser)
    add_model_arguments(parser, default_decode="argmax")


def run(args: argparse.Namespace) -> int:
    from nerfocal.documents import check_input, open_output
    from nerfocal.evaluate import evaluate_predictor, read_labelled
    from nerfocal.io import check_not_input
    from nerfocal.predict_options import check_document_boundary, predictor_from_args

    check_input(args.data)
    check_not_input(args.output, args.data)
    check_document_boundary(args.document_boundary)
    sentences = read_labelled(args.data, args.format, args.encoding, args.document_boundary)
    tokens, gold = [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]
    predictor = predictor_from_args(args)
    metrics = evaluate_predictor(
        predictor,
        tokens,
        gold,
        args.tag_scheme,
        args.mode == "strict",
        progress=not args.quiet,
        documents=[s.document for s in sentences],
    )
    metrics = {
        "model": str(args.model),
        "data": str(args.data),
        "context_size": predictor.context_size,
        "context_pack": predictor.context_pack,
        **metrics,
    }
    sys.stdout.write(metrics["report"] + "\n")
    sys.stdout.write(
        f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
        f"macro_f1 {metrics['macro_f1']:.4f}  ({metrics['n_sentences']} sentences)\n"
    )
    if args.output:
        if args.output_format == "hf":
            from nerfocal.seqeval_hf import to_hf_seqeval

            metrics = to_hf_seqeval(metrics)
        with open_output(args.output) as handle:
            json.dump(metrics, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    return 0
