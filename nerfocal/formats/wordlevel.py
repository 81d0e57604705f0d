"""Word-level formats: CoNLL columns, nerfocal JSONL and Hugging Face datasets saved to disk.

Reading delegates to :mod:`nerfocal.conll` (CoNLL, JSONL) and ``datasets.load_from_disk``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nerfocal.conll import DOCSTART, Sentence, conll_block, read_conll, read_jsonl, row_documents
from nerfocal.formats._base import ConvertStats, atomic_open
from nerfocal.labels import build_label_list, split_tag, tags_to_spans


def _checked(
    sentences: list[Sentence], path: Path, line_offsets: bool, stats: ConvertStats
) -> list[Sentence]:
    """Check every tag (``path:line`` of the word for CoNLL) and count the entities."""
    for s in sentences:
        s.extra.setdefault("source", f"{path}:{s.line}")
        for i, tag in enumerate(s.tags or []):
            try:
                split_tag(tag)
            except ValueError as err:
                where = f"{path}:{s.line + i}" if line_offsets else f"{s.extra['source']} (word {i + 1})"
                raise ValueError(f"{where}: {err}") from None
        stats.entities_in += len(tags_to_spans(s.tags or []))
    return sentences


def read_conll_file(path: str | Path, *, stats: ConvertStats) -> list[Sentence]:
    """Sentences of a labelled CoNLL file: the first column is the word, the last the tag."""
    path = Path(path)
    return _checked(list(read_conll(path)), path, True, stats)


def read_jsonl_file(path: str | Path, *, stats: ConvertStats) -> list[Sentence]:
    """Sentences of a nerfocal JSONL file (``{"tokens": [...], "tags": [...]}``, tags required)."""
    path = Path(path)
    return _checked(list(read_jsonl(path, require_tags=True)), path, False, stats)


def _check_tokens(sentence: Sentence, path: Path) -> None:
    for token in sentence.tokens:
        if not token or any(c.isspace() for c in token):
            raise ValueError(
                f"{path}: cannot write {sentence.extra.get('source', '?')}: the token {token!r} is empty or "
                "holds whitespace, which a CoNLL column file cannot represent; write JSONL instead"
            )


def _document_starts(sentences: list[Sentence]) -> list[bool]:
    """Which sentences start a document, when the sentences hold two documents or more (else none).

    A word file without document markers is one document, so one document needs no marker; sentences
    without a document (formats with no documents) get none either, as before.
    """
    keys = [s.document for s in sentences if s.tokens]
    if any(k is None for k in keys) or len(set(keys)) < 2:
        return [False] * len(sentences)
    starts, previous = [], None
    for s in sentences:
        starts.append(bool(s.tokens) and s.document != previous)
        previous = s.document if s.tokens else previous
    return starts


def write_conll_file(path: str | Path, sentences: list[Sentence], stats: ConvertStats) -> None:
    """``token tag`` lines, blank lines between sentences (atomic). Sentences without words are skipped.

    Input of two documents or more keeps them: a ``-DOCSTART- O`` line (and a blank line) before the
    first sentence of each (docs/context.md).
    """
    path = Path(path)
    starts = _document_starts(sentences)
    with atomic_open(path) as handle:
        for s, start in zip(sentences, starts, strict=True):
            if not s.tokens:
                continue
            _check_tokens(s, path)
            if start:
                handle.write(f"{DOCSTART} O\n\n")
            handle.write(conll_block(s.tokens, s.tags or []))
            stats.documents += 1
            stats.entities_out += len(tags_to_spans(s.tags or []))


def write_jsonl_file(path: str | Path, sentences: list[Sentence], stats: ConvertStats) -> None:
    """``{"tokens": [...], "tags": [...]}`` lines (atomic), with ``"document_id"`` when the input has
    documents (a CoNLL file's ``-DOCSTART-`` documents, a JSONL file's own ids)."""
    with atomic_open(path) as handle:
        for s in sentences:
            record: dict[str, Any] = {"tokens": s.tokens, "tags": s.tags}
            if s.document is not None:
                record["document_id"] = s.document
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            stats.documents += 1
            stats.entities_out += len(tags_to_spans(s.tags or []))


def read_hf_disk(path: str | Path, *, stats: ConvertStats) -> list[Sentence]:
    """Rows of a dataset saved with ``save_to_disk``: ``tokens``, ``ner_tags`` (``ClassLabel``) or ``tags``.

    A ``DatasetDict`` with one split is read whole; with several, name one split's folder.
    """
    import datasets

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: expected a dataset folder written by save_to_disk")
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise ValueError(
                f"{path}: a dataset with splits {sorted(ds)}; expected one split: pass {path}/<split>"
            )
        ds = next(iter(ds.values()))
    tag_col = "ner_tags" if "ner_tags" in ds.column_names else "tags"
    if "tokens" not in ds.column_names or tag_col not in ds.column_names:
        raise ValueError(
            f"{path}: expected columns 'tokens' and 'ner_tags' (or 'tags'), got {ds.column_names}"
        )
    names = getattr(ds.features[tag_col].feature, "names", None)
    sentences = []
    for i, (row, document) in enumerate(row_documents(ds, str(path))):
        if row is None:  # a -DOCSTART- row
            continue
        raw = row[tag_col]
        if names is None and not all(isinstance(t, str) for t in raw):
            raise ValueError(f"{path}: row {i}: expected a ClassLabel or string '{tag_col}', got {raw[:5]!r}")
        tags = [names[t] for t in raw] if names is not None else list(raw)
        sentences.append(Sentence(list(row["tokens"]), tags, i + 1, {"source": f"{path}: row {i}"}, document))
    return _checked(sentences, path, False, stats)


def write_hf_disk(path: str | Path, sentences: list[Sentence], stats: ConvertStats, scheme: str) -> None:
    """``Dataset.from_dict`` with ``ner_tags`` as a ``ClassLabel`` (labels: :func:`build_label_list`)
    and, when the input has documents, a ``document_id`` column; saved to a temporary folder beside
    ``path`` and moved over it once complete."""
    import datasets

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: expected a dataset folder, got a file")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the output directory {path.parent} does not exist")
    label_list = build_label_list([s.tags or [] for s in sentences], scheme)
    label2id = {label: i for i, label in enumerate(label_list)}
    columns: dict[str, Any] = {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=label_list)),
    }
    rows: dict[str, list[Any]] = {
        "tokens": [s.tokens for s in sentences],
        "ner_tags": [[label2id[t] for t in s.tags or []] for s in sentences],
    }
    if any(s.document is not None for s in sentences):  # the input's documents, as JSONL keeps them
        columns["document_id"] = datasets.Value("string")
        rows["document_id"] = [s.document for s in sentences]
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(columns))
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = path.parent / f"{tmp.name}.old"
    try:
        ds.save_to_disk(str(tmp / "ds"))
        if path.exists():
            os.replace(path, old)
        try:
            os.replace(tmp / "ds", path)
        except OSError:
            if old.exists():
                os.replace(old, path)  # put the previous dataset back
            raise
    finally:
        for leftover in (tmp, old):
            with contextlib.suppress(OSError):
                shutil.rmtree(leftover)
    stats.documents += len(sentences)
    stats.entities_out += sum(len(tags_to_spans(s.tags or [])) for s in sentences)
