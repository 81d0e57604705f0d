"""The JSON records of predictions, shared by ``nerfocal predict`` (JSONL) and ``nerfocal serve``.

Standard library only at run time: both writers build the same ``{"text", "label", "start", "end",
"score"}`` entity records here, so a server response and a JSONL line never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerfocal.words import Prediction

SCORE_DIGITS = 4  # scores are rounded: more digits are noise between float32 runs


def entity_records(prediction: Prediction) -> list[dict[str, Any]]:
    """The entities of one prediction as JSON objects, scores rounded to ``SCORE_DIGITS`` digits."""
    return [dict(e, score=round(e["score"], SCORE_DIGITS)) for e in prediction.entities]


def format_record(prediction: Prediction, word_tags: bool) -> dict[str, Any]:
    """The JSONL output object: the input record (or text / tokens) plus ``entities``."""
    doc = prediction.document
    if doc.record is not None:
        record = dict(doc.record)
    elif doc.text is not None:
        record = {"text": doc.text}
    else:
        record = {"tokens": doc.words} if doc.gold is None else {"tokens": doc.words, "tags": doc.gold}
    record["entities"] = entity_records(prediction)
    if word_tags:
        if doc.offsets is not None:
            record["words"] = [list(span) for span in doc.offsets]
        record["pred_tags"] = prediction.tags
    return record
