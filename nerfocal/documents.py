"""Read documents for prediction (text, CoNLL, JSONL; streamed) and write predictions (JSONL, CoNLL).

The library side of ``nerfocal predict``: the command line (:mod:`nerfocal.cli.predict`), the server and
the report read and write through these functions.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

# stdout for ``-``; a device or FIFO written through; else a temporary file renamed over the path
from nerfocal.io import atomic_open as open_output
from nerfocal.io import decode_error_message, decoded_lines
from nerfocal.records import format_record

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "TEXT_DOCUMENTS",
    "check_input",
    "count_documents",
    "open_input",
    "open_output",
    "read_documents",
    "write_prediction",
    "write_predictions",
]

if TYPE_CHECKING:
    from nerfocal.predict import Document, Prediction

INPUT_FORMATS = ("text", "conll", "jsonl")
OUTPUT_FORMATS = ("jsonl", "conll", "html")
TEXT_DOCUMENTS = ("blank-lines", "lines")  # text input: what a document is (document context)


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


def read_text(
    path: str, encoding: str, pattern: str | None, documents: str = "blank-lines"
) -> Iterator[Document]:
    """One input per line (without its line break); offsets are into that line.

    ``documents`` (document context): ``blank-lines``, consecutive non-blank lines are the sentences of
    one document and a blank line ends it; ``lines``, every line is a document of its own.
    """
    from nerfocal.predict import Document

    if documents not in TEXT_DOCUMENTS:
        raise ValueError(f"--text-documents: expected one of {', '.join(TEXT_DOCUMENTS)}, got {documents!r}")
    number, open_document = 0, False
    with open_input(path, encoding) as handle:
        for _, line in _decoded_lines(handle, path, encoding):
            doc = Document.from_text(line.rstrip("\n"), pattern)
            blank = not line.strip()
            if documents == "blank-lines" and not blank:
                number += not open_document
                doc.document_id = str(number)
            open_document = not blank
            yield doc


def read_jsonl_documents(path: str, encoding: str, pattern: str | None) -> Iterator[Document]:
    """``{"text": str}`` or ``{"tokens": [str, ...]}`` objects; ``tags`` as long as the tokens are gold.

    An optional ``document_id`` (and ``sentence_id``) groups consecutive records into one document
    (document context), as in training data (:func:`nerfocal.conll.read_jsonl`).
    """
    from nerfocal.conll import DocumentOrder, document_fields, load_json_line
    from nerfocal.predict import Document

    order = DocumentOrder()
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
            doc.document_id, position = document_fields(record, f"{path}:{line_no}")
            order.check(doc.document_id, position, f"{path}:{line_no}")
            yield doc


def read_conll_documents(
    path: str, encoding: str, document_boundary: str | None = None
) -> Iterator[Document]:
    """Sentences of a CoNLL file: the first column is the token; the last one is gold when there are >= 2.

    Their ``document_id`` is the file's document (``-DOCSTART-`` or ``document_boundary`` lines).
    """
    from nerfocal.conll import boundary_rule, read_conll
    from nerfocal.predict import Document

    if path == "-":  # read_conll needs a file: spool stdin to disk (memory stays flat)
        with tempfile.NamedTemporaryFile(prefix="nerfocal-stdin-", suffix=".conll") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            try:
                yield from read_conll_documents(spool.name, encoding, document_boundary)
            except ValueError as err:  # name stdin, not the spool file
                raise type(err)(str(err).replace(spool.name, "-")) from None
        return
    columns = 0
    is_boundary = boundary_rule(document_boundary)
    with open_input(path, encoding) as handle:
        for _, line in _decoded_lines(handle, path, encoding):
            fields = line.split()
            if fields and not is_boundary(line, fields[0]):
                columns = len(fields)
                break
    tag_column = -1 if columns >= 2 else None
    for sentence in read_conll(
        path, tag_column=tag_column, encoding=encoding, document_boundary=document_boundary
    ):
        yield Document(sentence.tokens, gold=sentence.tags, document_id=sentence.document)


def count_documents(path: str, input_format: str, encoding: str) -> int | None:
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


def write_prediction(handle: IO[str], prediction: Prediction, output_format: str, word_tags: bool) -> None:
    """One prediction in ``output_format``; ``html`` writes one highlighted document (between
    :func:`nerfocal.entities_html.page_start` and ``PAGE_END``, which :func:`write_predictions` adds)."""
    if output_format == "html":
        from nerfocal.entities_html import render_record

        handle.write(render_record(format_record(prediction, word_tags)) + "\n")
        return
    if output_format == "jsonl":
        handle.write(json.dumps(format_record(prediction, word_tags), ensure_ascii=False) + "\n")
        return
    from nerfocal.conll import conll_block

    doc = prediction.document
    if not doc.words:
        return
    words = [_conll_token(w) for w in doc.words]
    columns = (words, doc.gold, prediction.tags) if doc.gold is not None else (words, prediction.tags)
    handle.write(conll_block(*columns))


def read_documents(
    path: str,
    input_format: str,
    encoding: str,
    pattern: str | None,
    *,
    document_boundary: str | None = None,
    text_documents: str = "blank-lines",
) -> Iterator[Document]:
    """The inputs of ``path`` (``-``: stdin) in ``input_format`` (one of :data:`INPUT_FORMATS`), each with
    its ``document_id`` (docs/context.md): text, ``text_documents`` (:func:`read_text`); CoNLL,
    ``-DOCSTART-`` or ``document_boundary`` lines; JSONL, the records' ``document_id``."""
    if input_format == "text":
        return read_text(path, encoding, pattern, text_documents)
    if input_format == "jsonl":
        return read_jsonl_documents(path, encoding, pattern)
    if input_format == "conll":
        return read_conll_documents(path, encoding, document_boundary)
    raise ValueError(f"--input-format: expected one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")


def write_predictions(
    handle: IO[str], predictions: Iterable[Prediction], output_format: str, word_tags: bool, title: str = ""
) -> Iterator[Prediction]:
    """Write every prediction (a page header and footer around them for ``html``); yields each one
    after it is written, for a progress bar."""
    if output_format == "html":
        from nerfocal.entities_html import PAGE_END, page_start

        handle.write(page_start(title or "nerfocal predictions"))
    for prediction in predictions:
        write_prediction(handle, prediction, output_format, word_tags)
        yield prediction
    if output_format == "html":
        handle.write(PAGE_END)
