"""Character spans <-> word tags: the one place where annotation-tool offsets meet words.

Char -> words (:func:`doc_to_sentence`): the text is split with the word pattern of ``nerfocal
predict`` (:func:`nerfocal.words.split_words`) unless the document carries its own words. A span
covers the words it overlaps; whitespace at its edges is ignored. A span with an edge *inside* a
word, a span covering no word, and spans that overlap once in words are problems: listed (error),
moved to the word boundaries / resolved to the longest (snap), or removed (drop).

Words -> char (:func:`sentence_to_doc`): the tokens joined by single spaces; spans from the tags.
"""

from __future__ import annotations

import bisect
import logging

from nerfocal.conll import Sentence
from nerfocal.formats._base import CharDocument, ConvertStats
from nerfocal.labels import spans_to_tags, tags_to_spans
from nerfocal.words import split_words

logger = logging.getLogger(__name__)

WordSpan = tuple[int, int, str, int, int]  # first word, end word (exclusive), label, char start, char end


def sentence_to_doc(sentence: Sentence, doc_id: str = "?") -> CharDocument:
    """A word-level sentence as text (tokens joined by single spaces) with character spans.

    ``words`` keeps the token offsets, so writers can store the tokens next to the text and a
    reader gets the same words back whatever the word pattern would make of them.
    """
    offsets, pos = [], 0
    for token in sentence.tokens:
        offsets.append((pos, pos + len(token)))
        pos += len(token) + 1
    text = " ".join(sentence.tokens)
    spans = [
        (offsets[first][0], offsets[last - 1][1], label)
        for label, first, last in tags_to_spans(sentence.tags or [])
    ]
    return CharDocument(text, spans, doc_id, offsets)


def _span(doc: CharDocument, start: int, end: int, label: str) -> str:
    return f"[{start}, {end}) {label} {doc.text[start:end]!r}"


def _describe(doc: CharDocument, start: int, end: int, label: str) -> str:
    return f"{doc.id}: span {_span(doc, start, end, label)}"


def align_spans(
    doc: CharDocument, offsets: list[tuple[int, int]], misaligned: str, stats: ConvertStats
) -> list[WordSpan]:
    """Map the character spans of ``doc`` onto word indices.

    Args:
        doc: the document; its spans are already checked (in the text, not whitespace-only).
        offsets: ``(start, end)`` of each word, in order.
        misaligned: ``error`` (record the problem, keep nothing of it), ``snap`` or ``drop``.
        stats: every problem is appended to ``stats.problems`` (with what was done under snap/drop;
            under error the caller raises once every document is read); counts are updated.

    Returns:
        Non-overlapping word spans, sorted by first word.
    """
    starts = [a for a, _ in offsets]
    ends = [b for _, b in offsets]
    found: list[WordSpan] = []
    seen: set[tuple[int, int, str]] = set()
    for start, end, label in doc.spans:
        first = bisect.bisect_right(ends, start)  # first word ending after the span's start
        last = bisect.bisect_left(starts, end)  # words [first, last) start before the span's end
        if first >= last:
            _problem(stats, misaligned, f"{_describe(doc, start, end, label)} covers no word")
            continue
        inside = starts[first] < start or ends[last - 1] > end
        if inside:
            words = doc.text[starts[first] : ends[last - 1]]
            message = f"{_describe(doc, start, end, label)} has an edge inside a word ({words!r})"
            if misaligned == "snap":
                stats.snapped += 1
                stats.problems.append(f"{message}; snapped to {words!r}")
            else:
                _problem(stats, misaligned, message)
                continue
        key = (first, last, label)
        if key in seen:
            stats.duplicates += 1
            continue
        seen.add(key)
        found.append((first, last, label, start, end))
    return _resolve_overlaps(doc, found, misaligned, stats)


def _problem(stats: ConvertStats, misaligned: str, message: str) -> None:
    if misaligned == "error":
        stats.problems.append(message)
    else:
        stats.dropped += 1
        stats.problems.append(f"{message}; dropped")


def _resolve_overlaps(
    doc: CharDocument, spans: list[WordSpan], misaligned: str, stats: ConvertStats
) -> list[WordSpan]:
    """Keep the longest of overlapping spans (snap), none of them (drop), or report them (error)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0] - spans[i][1], spans[i][0], i))
    kept: list[WordSpan] = []
    overlapping: set[int] = set()
    for i in order:
        first, last = spans[i][0], spans[i][1]
        clash = next((k for k in kept if k[0] < last and first < k[1]), None)
        if clash is None:
            kept.append(spans[i])
            continue
        overlapping.add(i)
        _, _, label, start, end = spans[i]
        message = f"{_describe(doc, start, end, label)} overlaps {_span(doc, clash[3], clash[4], clash[2])}"
        if misaligned == "error":
            stats.problems.append(message)
        elif misaligned == "snap":
            stats.dropped += 1
            stats.problems.append(f"{message}; dropped, the longer span kept")
        else:
            overlapping.add(spans.index(clash))
    if misaligned == "drop" and overlapping:
        for i in sorted(overlapping):
            stats.dropped += 1
            span = _describe(doc, spans[i][3], spans[i][4], spans[i][2])
            stats.problems.append(f"{span} overlaps another span; dropped")
        kept = [s for i, s in enumerate(spans) if i not in overlapping]
    return sorted(kept)


def doc_to_sentence(
    doc: CharDocument,
    *,
    misaligned: str = "error",
    stats: ConvertStats | None = None,
    scheme: str = "IOB2",
    split_pattern: str | None = None,
) -> Sentence:
    """Words and tags of a character-offset document (see the module docstring for the rules).

    ``Sentence.extra`` gets ``source`` (the document id), ``text`` and ``offsets`` (each word's
    character offsets), so that a writer can keep the original text (spaCy DocBin does).
    """
    stats = stats if stats is not None else ConvertStats()
    offsets = doc.words if doc.words is not None else split_words(doc.text, split_pattern)[1]
    spans = align_spans(doc, offsets, misaligned, stats)
    tags = spans_to_tags([(label, first, last) for first, last, label, _, _ in spans], len(offsets), scheme)
    tokens = [doc.text[a:b] for a, b in offsets]
    return Sentence(tokens, tags, 0, {"source": doc.id, "text": doc.text, "offsets": offsets})
