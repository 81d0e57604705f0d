"""Annotation-tool formats and a converter: CoNLL, nerfocal JSONL, Hugging Face datasets saved to disk,
Label Studio JSON exports, doccano JSONL and spaCy DocBin. See ``docs/formats.md``.

Word-level data is a :class:`nerfocal.conll.Sentence`; text with character-offset spans is a
:class:`CharDocument`. Nothing is lost silently: every span that had to be moved or removed is
counted and described in :class:`ConvertStats`, and by default (``misaligned="error"``) refused.
"""

from __future__ import annotations

from nerfocal.formats._base import CharDocument, ConvertStats
from nerfocal.formats.align import doc_to_sentence, sentence_to_doc
from nerfocal.formats.convert import FORMATS, convert, read_sentences, sniff_format

__all__ = [
    "FORMATS",
    "CharDocument",
    "ConvertStats",
    "convert",
    "doc_to_sentence",
    "read_sentences",
    "sentence_to_doc",
    "sniff_format",
]
