"""Give each input of a stream the words of its document around it: :class:`ContextReader`.

This is the first step of :meth:`nerfocal.predict.Predictor.predict_documents` for a model with
document context, split out so that it can run in the process that reads the input: it only needs the
tokenizer, not the model, and it pickles. ``nerfocal predict --num-workers`` and a launched
``nerfocal predict`` attach context to the whole stream before cutting it into chunks, so a document
cut between chunks (or workers, or ranks) reads exactly what one process reads.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nerfocal.context import context_windows, pack_contexts
from nerfocal.words import Document

__all__ = ["ContextReader"]

BLOCK = 256  # documents per tokenizer call


@dataclasses.dataclass(frozen=True)
class ContextReader:
    """Attach document context to a stream of documents, lazily, in order.

    Args:
        tokenizer: the model's fast tokenizer (sub-words per word are counted with it).
        budget: sub-words per window besides the special tokens (``max_length`` - special tokens).
        context_size: sub-words of context on each side (> 0).
        context_pack: read runs of consecutive sentences of at most this many sub-words in one
            window (:func:`nerfocal.context.pack_contexts`); 0: each sentence in its own window.
    """

    tokenizer: Any
    budget: int
    context_size: int
    context_pack: int = 0

    def __call__(self, documents: Iterable[Document]) -> Iterator[Document]:
        """The documents, each with its ``context`` (left and right words; unchanged when it has none);
        inputs are grouped by ``Document.document_id``. Reads at most a block of documents plus the
        right context ahead of what it yields."""
        mine, theirs = itertools.tee(self._counted(documents))
        units, sized = itertools.tee(self._unit(doc, lengths) for doc, lengths in theirs)
        windows = context_windows(units, self.context_size, self.budget)
        items = ((key, words, sum(n), w) for (key, words, n), w in zip(sized, windows, strict=True))
        for (doc, _), (left, right) in zip(mine, pack_contexts(items, self.context_pack), strict=True):
            yield dataclasses.replace(doc, context=(left, right)) if left or right else doc

    def counter(self) -> Callable[[list[str]], list[int]]:
        """Sub-words per word, as ``tokenizer(words, add_special_tokens=False)`` counts them. With a fast
        tokenizer, its Rust tokenizer is called directly (a copy without truncation or padding): faster
        than the Python wrapper (3.4x once on CoNLL-2003 test words; docs/predict.md), which matters
        where one process reads context for several."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return lambda words: [
                len(ids) for ids in self.tokenizer(words, add_special_tokens=False)["input_ids"]
            ]
        from tokenizers import Tokenizer

        plain = Tokenizer.from_str(backend.to_str())
        plain.no_truncation()
        plain.no_padding()
        return lambda words: [len(e.ids) for e in plain.encode_batch(words, add_special_tokens=False)]

    def _counted(self, documents: Iterable[Document]) -> Iterator[tuple[Document, list[int]]]:
        """Each document with the sub-word count of each of its words, one tokenizer call per block."""
        iterator = iter(documents)
        count = self.counter()
        while block := list(itertools.islice(iterator, BLOCK)):
            flat = [w for doc in block for w in doc.words]
            lengths, start = count(flat) if flat else [], 0
            for doc in block:
                yield doc, lengths[start : start + len(doc.words)]
                start += len(doc.words)

    def _unit(self, doc: Document, lengths: list[int]) -> tuple[str | None, list[str], list[int]]:
        # a word with no sub-word is read as the unknown token, as in training (encode.py)
        unk = self.tokenizer.unk_token
        if unk is None or all(lengths):
            return doc.document_id, doc.words, lengths
        words = [unk if n == 0 else w for w, n in zip(doc.words, lengths, strict=True)]
        return doc.document_id, words, [max(1, n) for n in lengths]
