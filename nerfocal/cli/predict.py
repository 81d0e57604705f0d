"""Tag text, CoNLL or JSONL input with a trained model, streaming (see docs/predict.md).

Examples:
    nerfocal predict --model runs/conll03/best --input news.txt --output news.entities.jsonl
    nerfocal predict --model runs/conll03/best --input test.txt --input-format conll --output-format conll
    echo "Angela Merkel visited Paris ." | nerfocal predict --model runs/conll03/best
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerfocal.documents import INPUT_FORMATS, OUTPUT_FORMATS, TEXT_DOCUMENTS
from nerfocal.predict_options import add_context_arguments, add_model_argument, add_model_arguments

if TYPE_CHECKING:
    from nerfocal.predict import Document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--input", default="-", metavar="FILE", help="input file, or - for stdin (default)")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="text",
        help="text: one input per line (default); conll: token column of a CoNLL file (a gold tag "
        'column, when present, is carried to the output); jsonl: {"text": ...} or {"tokens": [...]} per line',
    )
    parser.add_argument(
        "--text-documents",
        choices=TEXT_DOCUMENTS,
        default="blank-lines",
        help="text input, for document context: blank-lines (default): the lines between blank lines are "
        "one document's sentences; lines: every line is a document of its own",
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
    parser.add_argument(
        "--num-workers",
        type=int,
        default=1,
        metavar="N",
        help="processes on this machine, each with its own copy of the model (default 1); the output "
        "is the same, in input order. Several GPUs or machines: see docs/predict.md, Many processes",
    )
    add_context_arguments(parser)
    add_model_arguments(parser, default_decode="viterbi")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nerfocal.documents import (
        check_input,
        count_documents,
        open_output,
        write_predictions,
    )
    from nerfocal.io import check_not_input, text_encoding
    from nerfocal.predict_options import check_document_boundary, predictor_from_args
    from nerfocal.predict_ranks import launched_world

    if args.num_workers < 1:
        raise ValueError(f"--num-workers: expected a positive number of processes, got {args.num_workers}")
    check_document_boundary(args.document_boundary)
    world = launched_world()
    if world is not None:
        return _run_on_ranks(args, world)
    documents = _read_documents(args)
    text_encoding(args.encoding)  # fail before loading the model
    total = None
    if args.input != "-":
        check_input(args.input)
        check_not_input(args.output, args.input)
        total = None if args.quiet else count_documents(args.input, args.input_format, args.encoding)
    # the single-process predictor loads before the bar appears: a bad model is one clean error line
    predictor = None
    if args.num_workers == 1:
        predictor = predictor_from_args(args, split_pattern=args.split_pattern, chunk_size=args.chunk_size)
    progress = tqdm(
        desc="predict",
        total=total,
        unit=" docs",
        file=sys.stderr,
        disable=args.quiet or args.input == "-",
        dynamic_ncols=True,
    )
    title = f"nerfocal predict: {args.input}"
    if args.num_workers > 1:
        return _run_in_processes(args, documents, progress, title)
    assert predictor is not None
    with progress, open_output(args.output) as handle:
        predictions = predictor.predict_documents(documents)
        for _ in write_predictions(handle, predictions, args.output_format, args.word_tags, title):
            progress.update()
    return 0


def _run_in_processes(
    args: argparse.Namespace, documents: Iterable[Document], progress: Any, title: str
) -> int:
    from nerfocal.documents import open_output
    from nerfocal.entities_html import PAGE_END, page_start
    from nerfocal.predict_options import predictor_loader
    from nerfocal.predict_workers import WorkerError, predict_in_processes

    load = predictor_loader(args, split_pattern=args.split_pattern, chunk_size=args.chunk_size)
    chunks = predict_in_processes(
        documents,
        load,
        num_workers=args.num_workers,
        output_format=args.output_format,
        word_tags=args.word_tags,
        chunk_size=args.chunk_size,
    )
    try:
        with progress, open_output(args.output) as handle:
            html = args.output_format == "html"
            if html:  # the page around the records, as write_predictions writes it
                handle.write(page_start(title))
            for count, text in chunks:
                handle.write(text)
                progress.update(count)
            if html:
                handle.write(PAGE_END)
    except WorkerError as err:
        print(f"nerfocal predict: error: {err}", file=sys.stderr)
        return 1
    finally:
        chunks.close()  # stops the worker processes
    return 0


def _run_on_ranks(args: argparse.Namespace, world: Any) -> int:
    """Under torchrun / accelerate launch: this rank's shard; the main process writes the output."""
    from tqdm import tqdm

    from nerfocal.documents import check_input, count_documents
    from nerfocal.entities_html import PAGE_END, page_start
    from nerfocal.io import check_not_input, text_encoding
    from nerfocal.predict_options import predictor_loader
    from nerfocal.predict_ranks import RankError, predict_on_ranks, rank_device

    launch = f"under a launch of {world.size} processes (WORLD_SIZE={world.size})"
    if args.num_workers != 1:
        raise ValueError(
            f"--num-workers: expected 1 {launch}, where each rank is a process, got {args.num_workers}"
        )
    if args.input == "-" or args.output == "-":
        option = "--input" if args.input == "-" else "--output"
        raise ValueError(f"{option}: expected a file {launch}, got - (every rank reads the input file)")
    if Path(args.output).exists() and not Path(args.output).is_file():
        raise ValueError(f"--output {args.output}: expected a regular file {launch}")
    text_encoding(args.encoding)
    check_input(args.input)
    check_not_input(args.output, args.input)
    total = count_documents(args.input, args.input_format, args.encoding)
    if total is None:
        raise ValueError(
            f"--input {args.input}: expected a regular file {launch} (its documents are counted)"
        )
    args.device = rank_device(args.device, world)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per rank would bury the progress bar
    load = predictor_loader(args, split_pattern=args.split_pattern, chunk_size=args.chunk_size)
    html = args.output_format == "html"
    progress = tqdm(
        desc="predict",
        total=total,
        unit=" docs",
        file=sys.stderr,
        disable=args.quiet or not world.is_main,
        dynamic_ncols=True,
    )
    try:
        with progress:
            predict_on_ranks(
                _read_documents(args),
                total,
                args.output,
                load,
                world=world,
                output_format=args.output_format,
                word_tags=args.word_tags,
                header=page_start(f"nerfocal predict: {args.input}") if html else "",
                footer=PAGE_END if html else "",
                progress=progress,
            )
    except (RankError, ValueError, OSError) as err:
        if not world.is_main:  # the main process reports every rank's failure in one line
            return 1 if isinstance(err, RankError) else 2
        if not isinstance(err, RankError):
            raise
        print(f"nerfocal predict: error: {err}", file=sys.stderr)
        return 1
    return 0


def _read_documents(args: argparse.Namespace) -> Iterable[Document]:
    """The documents of ``--input`` as its format, boundary and text-document options read them."""
    from nerfocal.documents import read_documents

    return read_documents(
        args.input,
        args.input_format,
        args.encoding,
        args.split_pattern,
        document_boundary=args.document_boundary,
        text_documents=args.text_documents,
    )
