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
from pathlib import Path
from typing import Any

from nerfocal.cli_predict import (
    add_model_argument,
    add_model_arguments,
    check_input,
    load_predictor,
    open_output,
)
from nerfocal.io import check_not_input


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
    add_model_arguments(parser, default_decode="argmax")


def read_gold(path: str, data_format: str, encoding: str) -> tuple[list[list[str]], list[list[str]]]:
    """``(tokens, tags)`` per sentence of a labelled file."""
    from nerfocal.conll import read_conll, read_jsonl
    from nerfocal.labels import split_tag

    if data_format == "auto":
        data_format = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"
    if data_format == "jsonl":
        sentences = list(read_jsonl(path, encoding=encoding, require_tags=True))
    else:
        sentences = list(read_conll(path, tag_column=-1, encoding=encoding))
    if not sentences:
        raise ValueError(f"{path}: no labelled sentences (the file is empty or only blank lines)")
    for s in sentences:
        for i, tag in enumerate(s.tags or []):
            try:
                split_tag(tag)
            except ValueError as err:
                line = s.line + i if data_format == "conll" else s.line  # CoNLL: one word per line
                raise ValueError(f"{path}:{line}: {err}") from None
    return [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]


def evaluate(
    predictor: Any,
    tokens: list[list[str]],
    gold: list[list[str]],
    scheme: str = "auto",
    strict: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Predict ``tokens`` and score against ``gold`` (converted from ``scheme`` to the model's scheme)."""
    from tqdm import tqdm

    from nerfocal.labels import convert_tags, detect_scheme
    from nerfocal.metrics import entity_metrics
    from nerfocal.predict import Document

    source = detect_scheme(gold) if scheme == "auto" else scheme
    target = predictor.scheme
    converted = []
    for k, tags in enumerate(gold):
        try:
            converted.append(convert_tags(tags, source, target))
        except ValueError as err:  # e.g. an E-/S- tag with --tag-scheme IOB2
            raise ValueError(f"sentence {k + 1}: {err} (--tag-scheme {source})") from None
    gold = converted
    predictions = predictor.predict_documents(Document(words) for words in tokens)
    bar = tqdm(
        predictions, total=len(tokens), desc="evaluate", unit=" sent", file=sys.stderr, disable=not progress
    )
    pred = [p.tags for p in bar]
    metrics = dict(entity_metrics(gold, pred, strict=strict))
    metrics.update(
        n_sentences=len(gold),
        gold_scheme=source,
        model_scheme=target,
        decode=predictor.decode,
        mode="strict" if strict else "default",
        report=_report(gold, pred, strict, target),
    )
    return metrics


def _report(gold: list[list[str]], pred: list[list[str]], strict: bool, scheme: str) -> str:
    """seqeval's text report; strict mode scores exact chunks of the model's scheme."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, IOBES

    if all(tag == "O" for tags in (*gold, *pred) for tag in tags):  # seqeval has no table to print
        return "no entities in the gold tags nor in the predictions: every entity score is 0"
    if strict:
        strict_scheme = IOBES if scheme == "BIOES" else IOB2
        report = classification_report(
            gold, pred, digits=4, mode="strict", scheme=strict_scheme, zero_division=0
        )
    else:
        report = classification_report(gold, pred, digits=4, zero_division=0)
    return str(report)


def run(args: argparse.Namespace) -> int:
    check_input(args.data)
    check_not_input(args.output, args.data)
    tokens, gold = read_gold(args.data, args.format, args.encoding)
    predictor = load_predictor(args)
    metrics = evaluate(
        predictor, tokens, gold, args.tag_scheme, args.mode == "strict", progress=not args.quiet
    )
    metrics = {"model": str(args.model), "data": str(args.data), **metrics}
    sys.stdout.write(metrics["report"] + "\n")
    sys.stdout.write(
        f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
        f"macro_f1 {metrics['macro_f1']:.4f}  ({metrics['n_sentences']} sentences)\n"
    )
    if args.output:
        with open_output(args.output) as handle:
            json.dump(metrics, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    return 0
