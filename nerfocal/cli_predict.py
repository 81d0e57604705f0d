"""Tag text, CoNLL or JSONL input with a trained model, streaming (see docs/predict.md).

Examples:
    nerfocal predict --model runs/conll03/best --input news.txt --output news.entities.jsonl
    nerfocal predict --model runs/conll03/best --input test.txt --input-format conll --output-format conll
    echo "Angela Merkel visited Paris ." | nerfocal predict --model runs/conll03/best
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

# stdout for ``-``; a device or FIFO written through; else a temporary file renamed over the path
from nerfocal.io import atomic_open as open_output
from nerfocal.io import check_not_input, decode_error_message, decoded_lines

if TYPE_CHECKING:
    from nerfocal.predict import Document, Prediction

INPUT_FORMATS = ("text", "conll", "jsonl")
OUTPUT_FORMATS = ("jsonl", "conll")


def add_model_arguments(parser: argparse.ArgumentParser, *, default_decode: str) -> None:
    """Options shared by ``predict`` and ``evaluate`` (after ``--model`` and the input options)."""
    decode_help = {
        "viterbi": "viterbi: best BIO-valid tag sequence (default); argmax: raw per-word argmax",
        "argmax": "argmax: per-word argmax of the first sub-word, exactly as the training evaluation "
        "(default, so the numbers match it); viterbi: best BIO-valid tag sequence",
    }[default_decode]
    parser.add_argument("--decode", choices=("viterbi", "argmax"), default=default_decode, help=decode_help)
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1, ...; auto: a GPU if visible (default)"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=4096,
        help="padded sub-word tokens per forward pass (default 4096)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per window, specials included (default: the training max_length, else the model's)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="tokens shared by consecutive windows of long inputs (default 1/4)",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="ignore the calibration temperature saved with the model",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow custom model code shipped in the model directory",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="encoder precision: float32 (default, exact); bfloat16 is ~1.7x faster on CPUs with native "
        "bf16 and changes a few predictions",
    )
    parser.add_argument("--encoding", default="utf-8", help="input file encoding (default utf-8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory written by training")


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
        help="jsonl: the input record plus its entities (default); conll: token, gold tag if any, prediction",
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


def load_predictor(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A :class:`nerfocal.predict.Predictor` from the shared options."""
    from transformers.utils import logging as hf_logging

    from nerfocal.predict import Predictor

    hf_logging.disable_progress_bar()
    return Predictor.from_pretrained(
        args.model,
        trust_remote_code=args.trust_remote_code,
        device=args.device,
        decode=args.decode,
        temperature=not args.no_temperature,
        max_length=args.max_length,
        stride=args.stride,
        batch_tokens=args.batch_tokens,
        dtype=args.dtype,
        **kwargs,
    )


def check_input(path: str) -> Path:
    """``path`` as a ``Path`` if it is a readable file; else ``FileNotFoundError`` / ``ValueError``."""
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if source.is_dir():
        raise ValueError(f"{source}: expected a file, got a directory")
    return source


@contextlib.contextmanager
def open_input(path: str, encoding: str) -> Iterator[Iterable[str]]:
    """The lines of ``path`` or stdin; a leading byte-order mark is dropped, CRLF becomes LF.

    stdin is decoded line by line (:func:`nerfocal.io.decoded_lines`): it cannot be read again to find
    the line of bytes that are not valid text.
    """
    from nerfocal.io import text_encoding

    enc = text_encoding(encoding)
    if path == "-":
        yield decoded_lines(sys.stdin.buffer, encoding)
        return
    source = check_input(path)
    with source.open(encoding=enc, newline=None) as handle:
        yield handle


def _decoded_lines(handle: Iterable[str], where: str, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` pairs; bytes not valid in ``encoding`` give a ``path:line`` error."""
    line_no = 0
    try:
        for line_no, line in enumerate(handle, start=1):
            yield line_no, line
    except UnicodeDecodeError as err:
        raise ValueError(decode_error_message(where, err, line_no + 1, encoding=encoding)) from None


def read_text(path: str, encoding: str, pattern: str | None) -> Iterator[Document]:
    """One document per line (without its line break); offsets are into that line."""
    from nerfocal.predict import Document

    with open_input(path, encoding) as handle:
        for _, line in _decoded_lines(handle, path, encoding):
            yield Document.from_text(line.rstrip("\n"), pattern)


def read_jsonl_documents(path: str, encoding: str, pattern: str | None) -> Iterator[Document]:
    """``{"text": str}`` or ``{"tokens": [str, ...]}`` objects; ``tags`` as long as the tokens are gold."""
    from nerfocal.conll import load_json_line
    from nerfocal.predict import Document

    with open_input(path, encoding) as handle:
        for line_no, line in _decoded_lines(handle, path, encoding):
            if not line.strip():
                continue
            record = load_json_line(line, f"{path}:{line_no}")
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            text, tokens = record.get("text"), record.get("tokens")
            if isinstance(text, str) and tokens is None:
                doc = Document.from_text(text, pattern)
            elif isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
                doc = Document(list(tokens))
                tags = record.get("tags")
                if (
                    isinstance(tags, list)
                    and len(tags) == len(tokens)
                    and all(isinstance(t, str) for t in tags)
                ):
                    doc.gold = list(tags)
            else:
                raise ValueError(
                    f'{path}:{line_no}: expected a string "text" or a list of strings "tokens", '
                    f"got keys {sorted(record)[:6]}"
                )
            doc.record = record
            yield doc


def read_conll_documents(path: str, encoding: str) -> Iterator[Document]:
    """Sentences of a CoNLL file: the first column is the token; the last one is gold when there are >= 2."""
    from nerfocal.conll import read_conll
    from nerfocal.predict import Document

    if path == "-":  # read_conll needs a file: spool stdin to disk (memory stays flat)
        with tempfile.NamedTemporaryFile(prefix="nerfocal-stdin-", suffix=".conll") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            try:
                yield from read_conll_documents(spool.name, encoding)
            except ValueError as err:  # name stdin, not the spool file
                raise type(err)(str(err).replace(spool.name, "-")) from None
        return
    columns = 0
    with open_input(path, encoding) as handle:
        for _, line in _decoded_lines(handle, path, encoding):
            fields = line.split()
            if fields and fields[0] != "-DOCSTART-":
                columns = len(fields)
                break
    tag_column = -1 if columns >= 2 else None
    for sentence in read_conll(path, tag_column=tag_column, encoding=encoding):
        yield Document(sentence.tokens, gold=sentence.tags)


def _count_documents(path: str, input_format: str, encoding: str) -> int | None:
    """The progress total: lines (text), non-blank lines (JSONL) or sentences (CoNLL) of a regular file."""
    from nerfocal.conll import count_sentences
    from nerfocal.io import count_lines

    if not Path(path).is_file():
        return None  # a FIFO or a device: reading it twice would lose the input
    if input_format == "conll":
        return count_sentences(path)
    return count_lines(path, encoding, skip_blank=input_format == "jsonl")


def _conll_token(token: str) -> str:
    # a CoNLL line splits on whitespace: keep one column per token
    return "_".join(token.split()) or "_"


def format_record(prediction: Prediction, word_tags: bool) -> dict[str, Any]:
    """The JSONL output object: the input record (or text / tokens) plus ``entities``."""
    doc = prediction.document
    if doc.record is not None:
        record = dict(doc.record)
    elif doc.text is not None:
        record = {"text": doc.text}
    else:
        record = {"tokens": doc.words} if doc.gold is None else {"tokens": doc.words, "tags": doc.gold}
    record["entities"] = [dict(e, score=round(e["score"], 4)) for e in prediction.entities]
    if word_tags:
        if doc.offsets is not None:
            record["words"] = [list(span) for span in doc.offsets]
        record["pred_tags"] = prediction.tags
    return record


def write_prediction(handle: IO[str], prediction: Prediction, output_format: str, word_tags: bool) -> None:
    if output_format == "jsonl":
        handle.write(json.dumps(format_record(prediction, word_tags), ensure_ascii=False) + "\n")
        return
    doc = prediction.document
    if not doc.words:
        return
    if doc.gold is not None:
        rows = zip(doc.words, doc.gold, prediction.tags, strict=True)
        handle.writelines(f"{_conll_token(w)} {g} {p}\n" for w, g, p in rows)
    else:
        handle.writelines(f"{_conll_token(w)} {p}\n" for w, p in zip(doc.words, prediction.tags, strict=True))
    handle.write("\n")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nerfocal.io import text_encoding

    if args.input_format == "text":
        documents = read_text(args.input, args.encoding, args.split_pattern)
    elif args.input_format == "jsonl":
        documents = read_jsonl_documents(args.input, args.encoding, args.split_pattern)
    else:
        documents = read_conll_documents(args.input, args.encoding)
    text_encoding(args.encoding)  # fail before loading the model
    total = None
    if args.input != "-":
        check_input(args.input)
        check_not_input(args.output, args.input)
        total = None if args.quiet else _count_documents(args.input, args.input_format, args.encoding)
    predictor = load_predictor(args, split_pattern=args.split_pattern, chunk_size=args.chunk_size)
    progress = tqdm(
        desc="predict",
        total=total,
        unit=" docs",
        file=sys.stderr,
        disable=args.quiet or args.input == "-",
        dynamic_ncols=True,
    )
    with progress, open_output(args.output) as handle:
        for prediction in predictor.predict_documents(documents):
            write_prediction(handle, prediction, args.output_format, args.word_tags)
            progress.update()
    return 0
