"""Entities highlighted in HTML: one renderer for ``nerfocal predict`` pages and the run report.

Entity records are those of :class:`nerfocal.words.Entity` (``{"text", "label", "start", "end",
"score"}``): character offsets into a text, or token indices (end exclusive) into a token list, which
is shown joined by single spaces. Every piece of text is HTML-escaped. The text is cut at every entity
boundary into segments and each segment closes all its elements, so overlapping or nested entities
(gold and predicted, say) never produce broken markup: an entity spanning several segments is one
``<mark>`` per segment, all with the same ``data-start``/``data-end``, and its label tag follows its
last segment. Standard library only.
"""

from __future__ import annotations

import html
import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# colour-blind-friendly light tones (Okabe-Ito / Tableau lightened); CoNLL types get fixed ones
PALETTE = (
    "#a6cee3",  # blue
    "#fdbf6f",  # orange
    "#b2df8a",  # green
    "#fb9a99",  # red
    "#cab2d6",  # purple
    "#ffff99",  # yellow
    "#8dd3c7",  # teal
    "#fccde5",  # pink
    "#d9d9d9",  # grey
    "#bc80bd",  # violet
    "#ccebc5",  # mint
    "#ffed6f",  # gold
)
FIXED_COLOURS = {"PER": PALETTE[0], "ORG": PALETTE[1], "LOC": PALETTE[2], "MISC": PALETTE[4]}

CSS = """
.nf-doc { line-height: 2.2; font-family: system-ui, sans-serif; margin: 0.6em 0; white-space: pre-wrap; }
.nf-ent { background: var(--nf-colour); border-radius: 0.3em; padding: 0.1em 0.15em; }
.nf-ent .nf-ent { padding: 0.1em 0; }
.nf-gold { background: transparent; border-bottom: 0.2em dashed var(--nf-colour); border-radius: 0; }
.nf-wrong { outline: 0.12em solid #c0392b; }
.nf-tag { font-size: 0.65em; font-weight: bold; text-transform: uppercase; margin-left: 0.3em;
  vertical-align: middle; }
.nf-gold > .nf-tag { font-style: italic; }
.nf-sbs { margin: 0.5em 0; }
.nf-row { display: flex; gap: 0.6em; align-items: baseline; }
.nf-row-name { width: 5em; color: #666; font-size: 0.85em; flex: none; }
""".strip()


def colour(label: str) -> str:
    """The label's colour: fixed for PER/ORG/LOC/MISC, else CRC32 of the name into :data:`PALETTE`.

    CRC32 rather than ``hash()``: the same label gets the same colour in every run and process.
    """
    return FIXED_COLOURS.get(label) or PALETTE[zlib.crc32(label.encode("utf-8")) % len(PALETTE)]


def render_entities(
    text_or_tokens: str | Sequence[str],
    entities: Iterable[Mapping[str, Any]],
    *,
    gold: Iterable[Mapping[str, Any]] | None = None,
) -> str:
    """One document as an HTML fragment (a ``<div class="nf-doc">``), entities highlighted.

    Args:
        text_or_tokens: the text (entity offsets are characters) or its tokens (offsets are token
            indices, end exclusive).
        entities: predicted entities; ``score`` (optional) is shown on hover.
        gold: reference entities, drawn as dashed underlines; a predicted entity without an exact
            gold match (same label, start and end) is outlined in red (class ``nf-wrong``).

    Raises:
        ValueError: an entity's offsets fall outside the text, or its ``text`` differs from the slice.
    """
    return _render(text_or_tokens, entities, gold, draw_gold=True)


def _render(
    text_or_tokens: str | Sequence[str],
    entities: Iterable[Mapping[str, Any]],
    gold: Iterable[Mapping[str, Any]] | None,
    draw_gold: bool,
) -> str:
    text, token_spans = _as_text(text_or_tokens)
    marks = [dict(_checked(e, i, "entity", text, token_spans), kind="pred") for i, e in enumerate(entities)]
    if gold is not None:
        gold_list = [_checked(e, i, "gold entity", text, token_spans) for i, e in enumerate(gold)]
        gold_keys = {(e["label"], e["start"], e["end"]) for e in gold_list}
        for m in marks:
            m["wrong"] = (m["label"], m["start"], m["end"]) not in gold_keys
        if draw_gold:
            marks += [dict(e, kind="gold") for e in gold_list]
    return f'<div class="nf-doc">{_segments(text, marks)}</div>'


def _as_text(text_or_tokens: str | Sequence[str]) -> tuple[str, list[tuple[int, int]] | None]:
    """The text and, for tokens, each token's character span in it (tokens joined by one space)."""
    if isinstance(text_or_tokens, str):
        return text_or_tokens, None
    spans, pos = [], 0
    for token in text_or_tokens:
        spans.append((pos, pos + len(token)))
        pos += len(token) + 1
    return " ".join(text_or_tokens), spans


def _checked(
    entity: Mapping[str, Any], i: int, what: str, text: str, token_spans: list[tuple[int, int]] | None
) -> dict[str, Any]:
    """The entity in character offsets (``orig``: as given), after checking offsets and text."""
    try:
        start, end, label = int(entity["start"]), int(entity["end"]), str(entity["label"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{what} {i}: expected label, start and end, got {dict(entity)!r} ({err})") from None
    limit, unit = (len(text), "characters") if token_spans is None else (len(token_spans), "tokens")
    if not 0 <= start < end <= limit:
        raise ValueError(f"{what} {i}: expected 0 <= start < end <= {limit} ({unit}), got {start}..{end}")
    a, b = (start, end) if token_spans is None else (token_spans[start][0], token_spans[end - 1][1])
    if "text" in entity and entity["text"] != text[a:b]:
        raise ValueError(f"{what} {i}: expected text {text[a:b]!r} at {start}..{end}, got {entity['text']!r}")
    return {"label": label, "start": a, "end": b, "orig": (start, end), "score": entity.get("score")}


def _segments(text: str, marks: list[dict[str, Any]]) -> str:
    cuts = sorted({0, len(text), *(m["start"] for m in marks), *(m["end"] for m in marks)})
    # outer first: earlier start, then longer; predictions outside gold at equal spans
    marks = sorted(marks, key=lambda m: (m["start"], -m["end"], m["kind"] == "gold"))
    parts = []
    for a, b in itertools.pairwise(cuts):
        covering = [m for m in marks if m["start"] <= a and b <= m["end"]]
        piece = html.escape(text[a:b])
        inner = f'<span class="nf-text">{piece}</span>' if covering else piece
        for m in reversed(covering):  # innermost first
            tag = f'<span class="nf-tag">{html.escape(m["label"])}</span>' if m["end"] == b else ""
            inner = f"<mark {_attributes(m)}>{inner}{tag}</mark>"
        parts.append(inner)
    return "".join(parts)


def _attributes(m: dict[str, Any]) -> str:
    classes = ["nf-ent", "nf-gold" if m["kind"] == "gold" else "nf-pred"]
    if m.get("wrong"):
        classes.append("nf-wrong")
    title = f"{m['label']} (gold)" if m["kind"] == "gold" else m["label"]
    if isinstance(m.get("score"), (int, float)):
        title += f" · score {m['score']:.3f}"
    attrs = {
        "class": " ".join(classes),
        "data-label": m["label"],
        "data-start": str(m["orig"][0]),
        "data-end": str(m["orig"][1]),
        "title": title,
        "style": f"--nf-colour: {colour(m['label'])}",
    }
    return " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())


def side_by_side(
    tokens: Sequence[str],
    gold_entities: Iterable[Mapping[str, Any]],
    pred_entities: Iterable[Mapping[str, Any]],
) -> str:
    """Gold and predicted entities of one sentence on two aligned rows (token-index entities).

    Predicted entities without an exact gold match are outlined (``nf-wrong``). Needs :data:`CSS`.
    """
    gold_list = list(gold_entities)
    gold_row = render_entities(tokens, gold_list)
    pred_row = _render(tokens, pred_entities, gold_list, draw_gold=False)  # misses show in the gold row
    return (
        '<div class="nf-sbs">'
        f'<div class="nf-row"><span class="nf-row-name">gold</span>{gold_row}</div>'
        f'<div class="nf-row"><span class="nf-row-name">predicted</span>{pred_row}</div>'
        "</div>"
    )


def tag_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Token-index entities of a tag sequence (IOB1, IOB2 or BIOES), for :func:`render_entities`."""
    from nerfocal.labels import tags_to_spans

    if len(tags) != len(tokens):
        raise ValueError(f"expected one tag per token ({len(tokens)}), got {len(tags)}")
    return [
        {"text": " ".join(tokens[a:b]), "label": label, "start": a, "end": b}
        for label, a, b in tags_to_spans(tags)
    ]


def render_record(record: Mapping[str, Any], where: str = "record") -> str:
    """One JSON record as ``nerfocal predict`` writes it (or a run's ``predictions_*.jsonl`` line).

    ``{"text" | "tokens", "entities"}`` (with both, ``tokens``, as ``nerfocal predict``); gold from
    ``"tags"`` (CoNLL input) or ``"gold"``; predicted tags ``"pred"`` stand in for ``entities`` when
    there are none.

    Raises:
        ValueError: naming ``where`` (e.g. ``"out.jsonl:3"``) when the record has no text or tokens.
    """
    source = record.get("tokens", record.get("text"))  # with both, predict used the tokens
    if source is None:
        raise ValueError(f"{where}: expected a 'text' or 'tokens' field, got keys {sorted(record)}")
    try:
        gold = None
        if not isinstance(source, str):
            gold_tags = record.get("tags", record.get("gold"))
            gold = tag_entities(source, gold_tags) if gold_tags is not None else None
        entities = record.get("entities")
        if entities is None and "pred" in record and not isinstance(source, str):
            entities = tag_entities(source, record["pred"])
        return render_entities(source, entities or [], gold=gold)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def page_start(title: str) -> str:
    """The head of a self-contained page (inline CSS, no external resources); then fragments."""
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{t}</title>\n'
        f"<style>\nbody {{ max-width: 60em; margin: 2em auto; padding: 0 1em; }}\n{CSS}\n</style>\n"
        f"</head>\n<body>\n<h1>{t}</h1>\n"
    )


PAGE_END = "</body>\n</html>\n"


def render_page(docs: Iterable[Mapping[str, Any] | str], title: str) -> str:
    """A self-contained HTML page of documents: records (see :func:`render_record`) or fragments.

    For long outputs, stream instead: ``page_start(title)``, then ``render_record(r)`` per record,
    then :data:`PAGE_END`.
    """
    parts = [page_start(title)]
    for i, doc in enumerate(docs):
        parts.append((doc if isinstance(doc, str) else render_record(doc, f"document {i + 1}")) + "\n")
    parts.append(PAGE_END)
    return "".join(parts)
