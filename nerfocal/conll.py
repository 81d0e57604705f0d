"""Streaming readers for CoNLL column files and JSONL, with errors that name ``path:line``.

Standard library only (with :mod:`nerfocal.io`): both training and inference read files through
this module.

CoNLL format accepted:
    * one token per line, columns separated by spaces or tabs (a mix is accepted: any run of
      whitespace separates columns, so a token itself never contains whitespace);
    * sentences separated by blank lines; a line of only whitespace (e.g. a lone tab, as in the
      upstream WNUT-17 files) also counts as a sentence break;
    * ``-DOCSTART-`` lines (CoNLL-2003 document markers), and the lines ``document_boundary`` names,
      start a new document and are not tokens (they end a sentence), so the ``i``-th token of a
      sentence is on line ``Sentence.line + i``; a file without such lines is one document;
    * CRLF line endings, a UTF-8 byte-order mark and trailing whitespace are tolerated.

Errors are :class:`DataFormatError` (a ``ValueError``) whose one-line message starts with ``path:line``.
See ``docs/robustness.md`` for every case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# atomic_open, locate_decode_error and text_encoding moved to nerfocal.io; re-exported for callers
from nerfocal.io import atomic_open, decode_error_message, locate_decode_error, text_encoding

__all__ = ["DataFormatError", "Sentence", "atomic_open", "locate_decode_error", "read_conll", "read_jsonl"]
__all__ += ["count_sentences", "load_json_line", "parse_record", "text_encoding", "write_conll"]
__all__ += ["DOCSTART", "DocumentOrder", "boundary_rule", "document_fields", "row_documents"]

DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    """One sentence: ``tokens`` and, when labelled, ``tags``; ``line`` is the 1-based line it starts on.

    ``document`` names the document the sentence belongs to (document context, docs/context.md):
    consecutive sentences with the same ``document`` are one document's sentences, in order; None:
    a document of its own.
    """

    tokens: list[str]
    tags: list[str] | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    document: str | None = None


class DataFormatError(ValueError):
    """A malformed input file; the message names ``path:line``."""


def _open_text(path: Path, encoding: str):  # type: ignore[no-untyped-def]
    enc = text_encoding(encoding)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataFormatError(f"{path}: expected a file, got a directory")
    # newline=None turns CRLF (and a lone CR) into LF.
    return path.open(encoding=enc, newline=None)


def _decode_error(path: Path, line_no: int, encoding: str, err: UnicodeDecodeError) -> DataFormatError:
    return DataFormatError(decode_error_message(path, err, line_no, encoding=encoding))


def read_conll(
    path: str | Path,
    *,
    tag_column: int | None = -1,
    token_column: int = 0,
    encoding: str = "utf-8",
    document_boundary: str | None = None,
) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL column file.

    Args:
        path: the file.
        tag_column: index of the tag column (negative counts from the end; -1 = last), or None for
            unlabelled files (only the token column is read).
        token_column: index of the token column.
        encoding: file encoding.
        document_boundary: lines that start a new document besides ``-DOCSTART-`` ones (see
            :func:`boundary_rule`); ``"sentence"``: every sentence is a document of its own.

    Yields:
        :class:`Sentence` objects with ``tokens`` and ``tags`` (``tags`` is None when unlabelled) and
        ``document``: ``"1"``, ``"2"``... counting the documents of the file (None with ``"sentence"``).

    Raises:
        DataFormatError: a line with a different number of columns than the first line of the file,
            a missing tag column, or bytes that are not valid in ``encoding``; the message names
            ``path:line``.
    """
    path = Path(path)
    is_boundary = boundary_rule(document_boundary)
    per_sentence = document_boundary == "sentence"
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    n_columns = 0
    line_no = 0
    document, in_document = 1, False  # the document's number; whether it has a sentence yet

    def sentence() -> Sentence:
        labelled = tags if tag_column is not None else None
        return Sentence(tokens, labelled, start, document=None if per_sentence else str(document))

    with _open_text(path, encoding) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                columns = raw.split()
                if not columns:
                    if tokens:
                        yield sentence()
                        tokens, tags, in_document = [], [], True
                    continue
                if is_boundary(raw, columns[0]):
                    if tokens:  # a document boundary is a sentence boundary
                        yield sentence()
                        tokens, tags, in_document = [], [], True
                    if in_document:
                        document, in_document = document + 1, False
                    continue
                if not n_columns:
                    n_columns = len(columns)
                    needed = max(_width(token_column), _width(tag_column))
                    if n_columns < needed:
                        raise DataFormatError(
                            f"{path}:{line_no}: expected at least {needed} columns "
                            f"(token column {token_column}, tag column {tag_column}), "
                            f"got {n_columns}: {raw.rstrip()[:200]!r}"
                        )
                    if tag_column is not None and tag_column % n_columns == token_column % n_columns:
                        raise DataFormatError(
                            f"{path}:{line_no}: expected a tag column besides the token column "
                            f"(token column {token_column}, tag column {tag_column}), got {n_columns} "
                            f"column(s): {raw.rstrip()[:200]!r}; is the file unlabelled?"
                        )
                elif len(columns) != n_columns:
                    raise DataFormatError(
                        f"{path}:{line_no}: expected {n_columns} columns like the first line, "
                        f"got {len(columns)}: {raw.rstrip()[:200]!r}"
                    )
                if not tokens:
                    start = line_no
                tokens.append(columns[token_column])
                if tag_column is not None:
                    tags.append(columns[tag_column])
        except UnicodeDecodeError as err:
            raise _decode_error(path, line_no + 1, encoding, err) from None
    if tokens:
        yield sentence()


def boundary_rule(document_boundary: str | None) -> Callable[[str, str], bool]:
    """``is_boundary(line, first_column)``: does a CoNLL line start a new document?

    ``-DOCSTART-`` lines always do. ``document_boundary`` adds: ``"re:PATTERN"``, the lines where the
    regular expression PATTERN matches (``re.search`` on the line without its line break); any other
    string, the lines whose first column is that string. None and ``"sentence"`` add nothing.

    Raises:
        ValueError: an invalid regular expression or an empty marker, naming ``document_boundary``.
    """
    if document_boundary is None or document_boundary == "sentence":
        return lambda line, first: first == DOCSTART
    if document_boundary.startswith("re:"):
        try:
            pattern = re.compile(document_boundary[3:])
        except re.error as err:
            raise ValueError(
                f"document_boundary: expected a valid regular expression after 're:', got "
                f"{document_boundary[3:]!r} ({err})"
            ) from None
        return lambda line, first: first == DOCSTART or pattern.search(line.rstrip("\r\n")) is not None
    if not document_boundary.strip() or len(document_boundary.split()) != 1:
        raise ValueError(
            "document_boundary: expected 'sentence', 're:PATTERN' or a first-column marker without "
            f"spaces, got {document_boundary!r}"
        )
    return lambda line, first: first in (DOCSTART, document_boundary)


def _width(column: int | None) -> int:
    if column is None:
        return 0
    return column + 1 if column >= 0 else -column


def read_jsonl(
    path: str | Path, *, encoding: str = "utf-8", require_tags: bool = False
) -> Iterator[Sentence]:
    """Stream ``{"tokens": [...], "tags": [...]}`` records (other fields go to ``Sentence.extra``).

    The optional ``document_id`` (a string or an integer) becomes ``Sentence.document``; a record
    without one is a document of its own. A document's records must be consecutive, and their
    optional ``sentence_id`` (an integer) increasing (:class:`DocumentOrder`).

    Raises:
        DataFormatError: invalid JSON, a record that is not an object, missing or non-string
            tokens, tags whose length differs from the tokens, a bad ``document_id`` or
            ``sentence_id``, or records of a document out of order; the message names ``path:line``.
    """
    path = Path(path)
    line_no = 0
    order = DocumentOrder()
    with _open_text(path, encoding) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                record = load_json_line(raw, f"{path}:{line_no}")
                sentence = parse_record(record, f"{path}:{line_no}", line_no, require_tags=require_tags)
                order.check(sentence.document, sentence.extra.get("sentence_id"), f"{path}:{line_no}")
                yield sentence
        except UnicodeDecodeError as err:
            raise _decode_error(path, line_no + 1, encoding, err) from None


# a \uD800-\uDFFF escape: JSON can spell a lone surrogate, which is not text (tokenizers reject it)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def load_json_line(line: str, where: str) -> Any:
    """``json.loads`` of one JSONL line, with every failure a :class:`DataFormatError` naming ``where``.

    Besides syntax errors: nesting too deep for the parser, and ``\\ud800``-style escapes of a lone
    surrogate (half of a UTF-16 pair), which no tokenizer accepts and no UTF-8 file can hold.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{where}: invalid JSON ({err.msg})") from None
    except RecursionError:
        raise DataFormatError(f"{where}: invalid JSON (nested too deeply)") from None
    if _SURROGATE_ESCAPE.search(line):
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DataFormatError(
                f"{where}: expected Unicode text, got a lone surrogate escape (\\ud800-\\udfff not in a pair)"
            ) from None
    return record


def parse_record(record: Any, where: str, line_no: int = 0, *, require_tags: bool = False) -> Sentence:
    """Validate one JSON record with ``tokens`` (and ``tags``) into a :class:`Sentence`."""
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    tokens = record.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataFormatError(f"{where}: expected 'tokens' to be a list of strings")
    tags = record.get("tags", record.get("ner_tags"))
    if tags is None and require_tags:
        raise DataFormatError(f"{where}: expected a 'tags' list, the record has none")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DataFormatError(f"{where}: expected 'tags' to be a list of strings")
        if len(tags) != len(tokens):
            raise DataFormatError(f"{where}: expected {len(tokens)} tags (one per token), got {len(tags)}")
    document, _ = document_fields(record, where)
    extra = {k: v for k, v in record.items() if k not in ("tokens", "tags", "ner_tags", "document_id")}
    return Sentence(list(tokens), list(tags) if tags is not None else None, line_no, extra, document)


def document_fields(record: Any, where: str) -> tuple[str | None, int | None]:
    """The optional ``document_id`` (a string or an integer, returned as a string) and ``sentence_id``
    (an integer) of a JSON record or dataset row; a :class:`DataFormatError` naming ``where`` otherwise."""
    document, position = record.get("document_id"), record.get("sentence_id")
    if document is not None and (isinstance(document, bool) or not isinstance(document, (str, int))):
        raise DataFormatError(
            f"{where}: expected 'document_id' to be a string or an integer, got {type(document).__name__}"
        )
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise DataFormatError(
            f"{where}: expected 'sentence_id' to be an integer, got {type(position).__name__}"
        )
    return (None if document is None else str(document)), position


class DocumentOrder:
    """Checks, record by record, that the records of a document are consecutive and that their
    ``sentence_id`` (when given) increase: document context reads sentences in file order."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.current: str | None = None
        self.last: int | None = None

    def check(self, document: str | None, sentence_id: Any, where: str) -> None:
        """A :class:`DataFormatError` naming ``where`` when this record breaks the order."""
        if document != self.current:
            if document in self.done:
                raise DataFormatError(
                    f"{where}: document_id {document!r} again after records of another document; "
                    "expected the records of a document to be consecutive"
                )
            if self.current is not None:
                self.done.add(self.current)
            self.current, self.last = document, None
        if document is not None and isinstance(sentence_id, int):
            if self.last is not None and sentence_id <= self.last:
                raise DataFormatError(
                    f"{where}: sentence_id {sentence_id} after {self.last} in document {document!r}; "
                    "expected increasing sentence_id (the records of a document in order)"
                )
            self.last = sentence_id


def row_documents(split: Any, where: str) -> Iterator[tuple[Any, str | None]]:
    """``(row, document)`` for each row of a dataset split; ``(None, None)`` for a ``-DOCSTART-`` row.

    A ``document_id`` column (string or integer; with an optional integer ``sentence_id``, increasing
    within a document) names the documents, whose rows must be consecutive. Without one, rows whose
    tokens are only ``-DOCSTART-`` (the hub's CoNLL-2003) start documents and are skipped; a split
    with neither has one document per row.
    """
    has_id = "document_id" in split.column_names
    marked = not has_id and any(tokens == [DOCSTART] for tokens in split["tokens"])
    order, document, in_document = DocumentOrder(), 1, False
    for i, row in enumerate(split):
        if has_id:
            key, position = document_fields(row, f"{where}: row {i}")
            order.check(key, position, f"{where}: row {i}")
            yield row, key
        elif list(row["tokens"]) == [DOCSTART]:
            document, in_document = document + in_document, False
            yield None, None
        else:
            in_document = True
            yield row, str(document) if marked else None


def conll_block(*columns: Sequence[str]) -> str:
    """One sentence as CoNLL lines: one row per word, the columns separated by spaces, then a blank line.

    The one CoNLL writer: :func:`write_conll`, ``nerfocal predict --output-format conll`` and
    ``nerfocal convert`` all use it.
    """
    return "".join(" ".join(row) + "\n" for row in zip(*columns, strict=True)) + "\n"


def write_conll(path: str | Path, sentences: list[tuple[list[str], list[str]]]) -> None:
    """Write ``token tag`` lines with blank-line sentence breaks (atomically, see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        for tokens, tags in sentences:
            handle.write(conll_block(tokens, tags))


def count_sentences(path: str | Path) -> int:
    """Sentences of a CoNLL file as :func:`read_conll` splits them, counted in binary (a progress total)."""
    count, inside = 0, False
    with Path(path).open("rb") as handle:
        for raw in handle:
            first = raw.split(maxsplit=1)[:1]
            if not first or first[0] == b"-DOCSTART-":
                inside = False
            elif not inside:
                count, inside = count + 1, True
    return count
