"""spaCy ``DocBin`` (``.spacy``) <-> documents. spaCy is optional: ``pip install nerfocal[spacy]``.

Reading: the Doc's text, ``doc.ents`` as character spans and its non-whitespace tokens as the words.
Writing: one Doc per sentence over a ``spacy.blank("xx")`` vocabulary, the words as tokens (the
original text kept when the sentence came from a text format), the entities as ``doc.ents``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nerfocal.conll import Sentence
from nerfocal.formats._base import CharDocument, ConvertStats, atomic_open
from nerfocal.labels import tags_to_spans


def _spacy() -> Any:
    try:
        import spacy
    except ImportError:
        raise ImportError("the spaCy DocBin format needs spaCy: pip install nerfocal[spacy]") from None
    return spacy


def read_docbin(path: str | Path, *, stats: ConvertStats) -> Iterator[CharDocument]:
    """Documents of a ``.spacy`` file, ids ``path: doc N`` (1-based)."""
    spacy = _spacy()
    from spacy.tokens import DocBin

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        docbin = DocBin().from_disk(path)
    except Exception as err:  # msgpack/zlib errors of a file that is not a DocBin
        raise ValueError(
            f"{path}: expected a spaCy DocBin (.spacy) file, got an unreadable one ({err})"
        ) from None
    for number, doc in enumerate(docbin.get_docs(spacy.blank("xx").vocab), start=1):
        spans = [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents]
        stats.entities_in += len(spans)
        words = [(t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]
        yield CharDocument(doc.text, spans, f"{path}: doc {number}", words)


def _words_and_spaces(text: str, offsets: list[tuple[int, int]]) -> tuple[list[str], list[bool], list[int]]:
    """spaCy tokens that spell ``text`` exactly: the words, plus whitespace tokens for gaps that are not
    one space; returns the tokens, their trailing-space flags and each word's token index."""
    words: list[str] = []
    spaces: list[bool] = []
    index: list[int] = []
    if offsets and offsets[0][0] > 0:
        words.append(text[: offsets[0][0]])
        spaces.append(False)
    for i, (start, end) in enumerate(offsets):
        index.append(len(words))
        words.append(text[start:end])
        gap = text[end : offsets[i + 1][0] if i + 1 < len(offsets) else len(text)]
        spaces.append(gap.startswith(" "))
        rest = gap[1:] if gap.startswith(" ") else gap
        if rest:
            words.append(rest)
            spaces.append(False)
    return words, spaces, index


def write_docbin(path: str | Path, sentences: list[Sentence], stats: ConvertStats) -> None:
    """Write a ``.spacy`` file (atomic); entity spans from the tags."""
    spacy = _spacy()
    from spacy.tokens import Doc, DocBin, Span

    vocab = spacy.blank("xx").vocab
    docbin = DocBin(store_user_data=False)
    for s in sentences:
        text, offsets = s.extra.get("text"), s.extra.get("offsets")
        if text is None or offsets is None:
            pos, offsets = 0, []
            for token in s.tokens:
                offsets.append((pos, pos + len(token)))
                pos += len(token) + 1
            text = " ".join(s.tokens)
        words, spaces, index = _words_and_spaces(text, offsets)
        doc = Doc(vocab, words=words, spaces=spaces)
        spans = tags_to_spans(s.tags or [])
        doc.ents = [Span(doc, index[first], index[last - 1] + 1, label=label) for label, first, last in spans]
        docbin.add(doc)
        stats.documents += 1
        stats.entities_out += len(spans)
    with atomic_open(path, "wb") as handle:
        handle.write(docbin.to_bytes())
