"""Label Studio JSON export (a list of tasks) <-> :class:`CharDocument`.

A task: ``{"id", "data": {"text": ...}, "annotations": [{"id", "completed_by", "was_cancelled",
"result": [{"type": "labels", "value": {"start", "end", "text", "labels": [LABEL]}, ...}]}],
"predictions": [...]}``. Predictions are never read. See ``docs/formats.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nerfocal.formats._base import (
    CharDocument,
    ConvertStats,
    atomic_open,
    check_char_span,
    choose_text,
    load_json_file,
    locate_tokens,
)

logger = logging.getLogger(__name__)


def _annotator_matches(annotation: dict[str, Any], annotator: str) -> bool:
    who = annotation.get("completed_by")
    if isinstance(who, dict):  # some exports expand the user: {"id", "email", "first_name", ...}
        return annotator in {str(who.get("id")), str(who.get("email"))}
    return str(who) == annotator


def choose_annotation(
    annotations: list[Any], annotator: int | str | None, where: str
) -> tuple[dict[str, Any] | None, str]:
    """The annotation to convert and, when there is none, why.

    Args:
        annotations: the task's ``annotations`` list.
        annotator: None: the first annotation not cancelled; an int: that index (0-based) in the
            list; a string: the first non-cancelled annotation whose ``completed_by`` (a user id, or
            the user's id or email when the export expands it) equals it.
    """
    for i, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise ValueError(f"{where}: annotation {i}: expected an object, got {type(annotation).__name__}")
    if isinstance(annotator, int) and not isinstance(annotator, bool):
        if not 0 <= annotator < len(annotations):
            return None, f"no annotation number {annotator} (the task has {len(annotations)})"
        chosen = annotations[annotator]
        if chosen.get("was_cancelled"):
            return None, f"annotation number {annotator} is cancelled"
        return chosen, ""
    live = [a for a in annotations if not a.get("was_cancelled")]
    if annotator is not None:
        live = [a for a in live if _annotator_matches(a, str(annotator))]
        if not live:
            return None, f"no annotation (not cancelled) completed by {annotator!r}"
    if not live:
        cancelled = len(annotations)
        return None, "no annotation" if not cancelled else f"only cancelled annotations ({cancelled})"
    return live[0], ""


def _utf16_to_codepoints(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Offsets counted in UTF-16 code units (older Label Studio front ends) as code point offsets."""
    units, result = 0, {}
    for i, char in enumerate(text):
        result[units] = i
        units += 2 if ord(char) > 0xFFFF else 1
    result[units] = len(text)
    if start in result and end in result:
        return result[start], result[end]
    return None


def _result_span(
    item: Any, text: str, where: str, stats: ConvertStats, misaligned: str
) -> tuple[int, int, str] | None:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a result object, got {type(item).__name__}")
    kind = item.get("type")
    if kind != "labels":
        raise ValueError(
            f"{where}: result {item.get('id', '?')}: unsupported result type {kind!r}; expected 'labels' "
            "(text spans from a <Labels> tag)"
        )
    value = item.get("value")
    if not isinstance(value, dict):
        raise ValueError(f"{where}: result {item.get('id', '?')}: expected a 'value' object")
    labels = value.get("labels")
    if not isinstance(labels, list) or len(labels) != 1:
        raise ValueError(
            f"{where}: result {item.get('id', '?')}: expected one label in 'labels', got {labels!r}"
        )
    start, end, label = value.get("start"), value.get("end"), labels[0]
    quoted = value.get("text")
    if isinstance(quoted, str) and type(start) is int and type(end) is int and text[start:end] != quoted:
        fixed = _utf16_to_codepoints(text, start, end)
        if fixed is not None and text[fixed[0] : fixed[1]] == quoted:
            start, end = fixed  # offsets in UTF-16 units (text with emoji), the quoted text agrees
        elif 0 <= start < end <= len(text):
            message = (
                f"{where}: span [{start}, {end}) {label} {text[start:end]!r}: the offsets do not match "
                f"the span's text {quoted!r}"
            )
            if misaligned != "error":
                stats.dropped += 1
                message += "; dropped"
            stats.problems.append(message)
            return None
    return check_char_span(text, start, end, label, where)


def read_labelstudio(
    path: str | Path,
    *,
    stats: ConvertStats,
    text_key: str | None = None,
    annotator: int | str | None = None,
    misaligned: str = "error",
) -> Iterator[CharDocument]:
    """Documents of a Label Studio JSON export, one per task with a usable annotation.

    Tasks without one (no annotation, only cancelled ones, none by ``annotator``) are skipped and
    counted (``stats.skipped``, a line in ``stats.notes``): an unannotated task is not "no entity".
    A ``tokens`` list in ``data`` (as :func:`write_labelstudio` stores) gives the words.

    Raises:
        ValueError: not a list of tasks, a task without ``data`` or the text key, a result type other
            than ``labels``, offsets beyond the text, empty or whitespace-only spans; naming the file
            and the task id.
    """
    path = Path(path)
    tasks = load_json_file(path)
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(
            f"{path}: expected a Label Studio export (a JSON list of tasks), got {type(tasks).__name__}"
        )
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise ValueError(f"{path}: task {number}: expected an object, got {type(task).__name__}")
        where = f"{path}: task {task.get('id', f'#{number}')}"
        if "data" not in task:
            raise ValueError(f"{where}: expected a 'data' object with the text, got keys {sorted(task)}")
        text = choose_text(task["data"], text_key, where)
        annotations = task.get("annotations", task.get("completions", []))
        if not isinstance(annotations, list):
            raise ValueError(f"{where}: expected 'annotations' to be a list")
        annotation, why = choose_annotation(annotations, annotator, where)
        if annotation is None:
            stats.skipped += 1
            stats.notes.append(f"{where}: {why}; skipped")
            continue
        where_ann = f"{where}, annotation {annotation.get('id', '?')}"
        result = annotation.get("result", [])
        if not isinstance(result, list):
            raise ValueError(f"{where_ann}: expected 'result' to be a list")
        spans = []
        for item in result:
            span = _result_span(item, text, where_ann, stats, misaligned)
            stats.entities_in += 1
            if span is not None:
                spans.append(span)
        tokens = task["data"].get("tokens")
        words = locate_tokens(text, tokens, where) if tokens is not None else None
        yield CharDocument(text, spans, where_ann, words)


def write_labelstudio(path: str | Path, docs: list[CharDocument], stats: ConvertStats) -> None:
    """Write importable Label Studio tasks: ``data.text``, the spans as ``annotations[0].result``.

    The labelling config these match: ``<Labels name="label" toName="text">`` over
    ``<Text name="text" value="$text"/>``. When the document has its own words (it came from CoNLL,
    JSONL, a dataset or spaCy), ``data.tokens`` keeps them so converting back gives the same words.
    """
    tasks = []
    for number, doc in enumerate(docs, start=1):
        result = [
            {
                "id": f"t{number}e{j}",
                "type": "labels",
                "from_name": "label",
                "to_name": "text",
                "value": {"start": s, "end": e, "text": doc.text[s:e], "labels": [label]},
            }
            for j, (s, e, label) in enumerate(doc.spans, start=1)
        ]
        data: dict[str, Any] = {"text": doc.text}
        if doc.words is not None:
            data["tokens"] = [doc.text[a:b] for a, b in doc.words]
        tasks.append({"data": data, "annotations": [{"result": result}], "predictions": []})
        stats.entities_out += len(result)
    stats.documents += len(tasks)
    with atomic_open(path) as handle:  # a JSON list, one task per line
        handle.write("[\n" + ",\n".join(json.dumps(t, ensure_ascii=False) for t in tasks) + "\n]\n")
