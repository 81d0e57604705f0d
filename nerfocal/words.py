"""Words of raw text with character offsets, and the document / prediction / entity records.

Standard library and :mod:`nerfocal.labels` only. See ``docs/predict.md`` for the splitting rule.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

from nerfocal.labels import tags_to_spans


class Entity(TypedDict):
    """One predicted entity; ``start``/``end`` are character offsets (text) or token indices (tokens)."""

    text: str
    label: str
    start: int
    end: int
    score: float


@functools.lru_cache(maxsize=1)
def _marks() -> str:
    """A regex character class body of all combining marks (Unicode categories Mn, Mc, Me)."""
    ranges: list[tuple[int, int]] = []
    for cp in itertools.chain(range(0x20000), range(0xE0000, 0xE1000)):  # no marks elsewhere
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


# Scripts written without spaces between words: each character is a word (as BERT's basic tokenizer
# splits CJK ideographs), so that an entity inside a run such as 東京都に行った can be tagged. Han
# (ideographs, their extensions and compatibility forms, 々 and 〇), Hiragana and Katakana (full and
# half width). Thai, Lao, Khmer and Myanmar are not split (see docs/predict.md).
_CHARACTER_WORDS = (
    "\u3005\u3007\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U000323af"
)
# what stays attached to an emoji or symbol besides combining marks (variation selectors are marks):
# skin-tone modifiers and the tag characters of subdivision flags
_EMOJI_EXTENDERS = "\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f"
_JOINERS = "\u200c\u200d\u00ad"  # inside a word only, never a word by themselves
_SEPARATORS = "\u200b\u2060\ufeff"  # invisible, separate words like spaces


@functools.lru_cache(maxsize=1)
def default_split_pattern() -> str:
    """The default word pattern (see ``docs/predict.md``).

    A word is, in order of precedence:

    * one Han, Hiragana or Katakana character, with its combining marks;
    * a run of word characters (letters, digits, ``_``, combining marks), with zero-width
      (non-)joiners and soft hyphens inside or at its end, possibly joined by single internal
      hyphens or apostrophes (``New-York``, ``don't``);
    * a flag (two regional indicators);
    * any other character that is not whitespace, with its combining marks, skin-tone modifiers and
      tag characters, and further such characters joined to it by U+200D (emoji ZWJ sequences).

    The invisible U+200B, U+2060 and U+FEFF separate words like spaces, and so do joiners and soft
    hyphens that are not inside a word.
    """
    marks = _marks()
    # [^\W...]: a word character that is not a character word; marks are \W. Runs of each (not single
    # characters in an alternation) keep the regex engine's fast path for [...]+
    letters = rf"[^\W{_CHARACTER_WORDS}]+"
    word = rf"(?:{letters}|[{marks}]+)(?:{letters}|[{marks}{_JOINERS}]+)*"
    symbol = rf"[^\w\s{_SEPARATORS}{_JOINERS}][{marks}{_EMOJI_EXTENDERS}]*"
    return (
        rf"[{_CHARACTER_WORDS}][{marks}]*"
        rf"|{word}(?:[-'\u2019]{word})*"
        r"|[\U0001f1e6-\U0001f1ff]{2}"
        rf"|{symbol}(?:\u200d{symbol})*"
    )


@functools.lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``re.compile`` with a ``ValueError`` naming the bad pattern."""
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(
            f"expected a valid regular expression for the split pattern, got {pattern!r}: {err}"
        ) from None


def split_words(text: str, pattern: str | None = None) -> tuple[list[str], list[tuple[int, int]]]:
    """Split ``text`` into words with their character offsets: ``text[start:end] == word``.

    Args:
        text: one document.
        pattern: a regular expression whose non-empty matches are the words; default
            :func:`default_split_pattern`.
    """
    words: list[str] = []
    offsets: list[tuple[int, int]] = []
    for match in compile_pattern(pattern or default_split_pattern()).finditer(text):
        if match.end() > match.start():
            words.append(match.group())
            offsets.append(match.span())
    return words, offsets


@dataclass
class Document:
    """One input: ``words``; for raw text also the ``text`` and each word's character ``offsets``.

    ``gold`` (reference tags) and ``record`` (the input JSON object) are carried to the output.
    ``document_id``: consecutive inputs with the same id are the sentences of one document, read with
    each other's words as context when the model uses document context (docs/context.md); None: alone.
    ``context``: the ``(left, right)`` context words the Predictor chose for it (set when predicting).
    """

    words: list[str]
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None
    gold: list[str] | None = None
    record: dict[str, Any] | None = None
    document_id: str | None = None
    context: tuple[list[str], list[str]] | None = None

    @classmethod
    def from_text(cls, text: str, pattern: str | None = None, document_id: str | None = None) -> Document:
        words, offsets = split_words(text, pattern)
        return cls(words, text, offsets, document_id=document_id)


@dataclass
class Prediction:
    """Per-word tags and the probability of each chosen tag for one :class:`Document`."""

    document: Document
    tags: list[str]
    scores: list[float]

    @property
    def entities(self) -> list[Entity]:
        """Entities in order; ``score``: mean over the span's words of the chosen tag's probability."""
        doc, result = self.document, []
        for label, first, last in tags_to_spans(self.tags):
            score = sum(self.scores[first:last]) / (last - first)
            if doc.offsets is not None and doc.text is not None:
                start, end = doc.offsets[first][0], doc.offsets[last - 1][1]
                result.append(
                    Entity(text=doc.text[start:end], label=label, start=start, end=end, score=score)
                )
            else:
                text = " ".join(doc.words[first:last])
                result.append(Entity(text=text, label=label, start=first, end=last, score=score))
        return result


def document_chunks(
    documents: Iterable[Document], chunk_size: int = 2048, chunk_words: int = 200_000
) -> Iterator[list[Document]]:
    """Consecutive chunks of ``documents``: a chunk ends at ``chunk_size`` documents or ``chunk_words``
    words (:meth:`nerfocal.predict.Predictor.predict_documents`, and the tasks of workers and ranks). A
    chunk may end inside a document: with document context, the inputs get theirs before they are cut
    (:class:`nerfocal.context_reader.ContextReader`), so the cut changes nothing.
    """
    if min(chunk_size, chunk_words) < 1:
        raise ValueError(f"expected positive chunk sizes, got {chunk_size=}, {chunk_words=}")
    chunk: list[Document] = []
    words = 0
    for document in documents:
        chunk.append(document)
        words += len(document.words)
        if len(chunk) >= chunk_size or words >= chunk_words:
            yield chunk
            chunk, words = [], 0
    if chunk:
        yield chunk
