"""doccano sequence-labelling JSONL <-> :class:`CharDocument`.

One record per line: ``{"text": ..., "label": [[start, end, LABEL], ...]}``; also read: the older
``labels`` key and the ``entities`` list of ``{"start_offset", "end_offset", "label"}`` objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nerfocal.formats._base import (
    CharDocument,
    ConvertStats,
    atomic_open,
    check_char_span,
    choose_text,
    jsonl_records,
    locate_tokens,
)

SPAN_KEYS = ("label", "labels", "entities")


def _raw_spans(record: dict[str, Any], where: str) -> list[tuple[Any, Any, Any]]:
    key = next((k for k in SPAN_KEYS if k in record), None)
    if key is None:
        return []
    items = record[key]
    if not isinstance(items, list):
        raise ValueError(f"{where}: expected {key!r} to be a list of spans, got {type(items).__name__}")
    spans = []
    for item in items:
        if isinstance(item, dict):
            spans.append((item.get("start_offset"), item.get("end_offset"), item.get("label")))
        elif isinstance(item, list) and len(item) == 3:
            spans.append((item[0], item[1], item[2]))
        else:
            raise ValueError(
                f"{where}: expected {key!r} items like [start, end, LABEL] or "
                f'{{"start_offset", "end_offset", "label"}}, got {item!r}'
            )
    return spans


def read_doccano(
    path: str | Path, *, stats: ConvertStats, text_key: str | None = None
) -> Iterator[CharDocument]:
    """Documents of a doccano JSONL export (ids in messages: ``path:line`` and the record ``id``).

    A ``tokens`` list in a record (as :func:`write_doccano` stores) gives the words.

    Raises:
        ValueError: invalid JSON, a missing text field, malformed spans, offsets beyond the text,
            empty or whitespace-only spans; naming ``path:line``.
    """
    path = Path(path)
    for line_no, record in jsonl_records(path):
        where = f"{path}:{line_no}"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if "id" in record:
            where += f" (id {record['id']})"
        data = {k: v for k, v in record.items() if k not in SPAN_KEYS}
        text = choose_text(data, text_key, where)
        spans = [check_char_span(text, s, e, label, where) for s, e, label in _raw_spans(record, where)]
        stats.entities_in += len(spans)
        tokens = record.get("tokens")
        words = locate_tokens(text, tokens, where) if tokens is not None else None
        yield CharDocument(text, spans, where, words)


def write_doccano(path: str | Path, docs: list[CharDocument], stats: ConvertStats) -> None:
    """Write ``{"text", "label"}`` lines (plus ``tokens`` when the document has its own words)."""
    with atomic_open(path) as handle:
        for doc in docs:
            record: dict[str, Any] = {"text": doc.text, "label": [list(s) for s in doc.spans]}
            if doc.words is not None:
                record["tokens"] = [doc.text[a:b] for a, b in doc.words]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            stats.entities_out += len(doc.spans)
    stats.documents += len(docs)
