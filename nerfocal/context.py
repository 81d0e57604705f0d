"""Document context (FLERT, Schweter & Akbik 2020): each sentence read with its neighbours' words.

A sentence is encoded as ``left context + sentence + right context``: up to ``context_size`` sub-word
tokens of the sentences before it and of those after it in the same document, cut at the document's
edges. Only the sentence's own words are labelled and read; the context positions are
``IGNORE_INDEX`` in training and never read in evaluation or prediction. The training encoder
(:mod:`nerfocal.encode`), the evaluation windows and :class:`nerfocal.predict.Predictor` all choose the
context with :func:`context_windows`, so a sentence gets the same context in the three of them.

Rules (docs/context.md):

* context is made of whole words, taken outwards from the sentence while their sub-words fit;
* the sentence is never shortened for it: the context gets only the room the sentence leaves in
  ``max_length``, shared between the two sides (the left side gets the larger half when both sides
  want more than there is room for); a sentence that needs windows gets no context;
* documents are runs of consecutive sentences with the same ``document`` key; ``None`` is a document of
  its own (so it never gets context).

Standard library only: prediction imports it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "Context",
    "check_context_options",
    "check_training_context",
    "context_windows",
    "count_documents",
    "merge_shared_windows",
    "pack_contexts",
    "pack_limit",
    "pack_runs",
    "saved_context",
    "sentence_contexts",
    "training_sequences",
]

Context = tuple[list[str], list[str]]  # (left context words, right context words)
_NO_CONTEXT: Context = ([], [])


def check_context_options(context_size: Any, context_dropout: Any = 0.0, context_pack: Any = 0) -> None:
    """``ValueError`` naming ``context_size`` or ``context_pack`` (integers >= 0) or ``context_dropout``
    (in [0, 1])."""
    if isinstance(context_pack, bool) or not isinstance(context_pack, int) or context_pack < 0:
        raise ValueError(f"context_pack: expected an integer >= 0 (sub-words), got {context_pack!r}")
    if isinstance(context_size, bool) or not isinstance(context_size, int) or context_size < 0:
        raise ValueError(
            f"context_size: expected an integer >= 0 (sub-words on each side), got {context_size!r}"
        )
    if isinstance(context_dropout, bool) or not isinstance(context_dropout, (int, float)):
        raise ValueError(f"context_dropout: expected a number in [0, 1], got {context_dropout!r}")
    if not 0.0 <= float(context_dropout) <= 1.0:
        raise ValueError(f"context_dropout: expected a number in [0, 1], got {context_dropout!r}")


def check_training_context(context_size: Any, context_dropout: Any, context_pack: Any) -> None:
    """:func:`check_context_options`, and ``context_pack`` only with ``context_size`` (it packs sentences
    that have document context; without it the option would be saved and do nothing)."""
    check_context_options(context_size, context_dropout, context_pack)
    if context_pack and not context_size:
        raise ValueError(
            f"context_pack: expected context_size > 0 with it (runs share context), got {context_pack}"
        )


def saved_context(
    config: Any, context_size: int | None, context_pack: int | None, budget: int
) -> tuple[int, int]:
    """``(context_size, context_pack)`` a predictor reads with: the given ones, else the training run's
    (``config.nerfocal_context_size`` / ``nerfocal_context_pack``, 0 when absent), checked; the packing
    capped by :func:`pack_limit` for windows of ``budget`` sub-words besides the special tokens."""

    def saved(name: str) -> int:
        value = getattr(config, name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    size = saved("nerfocal_context_size") if context_size is None else context_size
    pack = saved("nerfocal_context_pack") if context_pack is None else context_pack
    check_context_options(size, 0.0, pack)
    return size, pack_limit(pack, budget, size)


def count_documents(keys: Iterable[Hashable | None]) -> int:
    """Documents in a sequence of sentence keys: runs of equal keys, each ``None`` a document of its own."""
    count, previous = 0, object()
    for key in keys:
        if key is None or key != previous:
            count += 1
        previous = key if key is not None else object()
    return count


def _split_room(room: int, want_left: int, want_right: int) -> tuple[int, int]:
    """Sub-words for each side: what each wants, or shares of ``room`` (the left gets the larger half)."""
    if want_left + want_right <= room:
        return want_left, want_right
    right_half = room // 2
    if want_right <= right_half:
        return room - want_right, want_right
    if want_left <= room - right_half:
        return want_left, room - want_left
    return room - right_half, right_half


class _Run:
    """The sentences of one document seen so far, kept as long as they may still be context."""

    def __init__(self, key: Hashable | None, size: int, budget: int) -> None:
        self.key, self.size, self.budget = key, size, budget
        self.words: list[str] = []
        self.lengths: list[int] = []
        self.base = 0  # the document's index of words[0] (earlier words were dropped)
        self.pending: deque[tuple[int, int]] = deque()  # (start, end) of sentences not yet given out
        self.after = 0  # sub-words after the end of pending[0]

    def add(self, words: Sequence[str], lengths: Sequence[int]) -> None:
        start = self.base + len(self.words)
        self.words.extend(words)
        self.lengths.extend(lengths)
        self.after = self.after + sum(lengths) if self.pending else 0
        self.pending.append((start, start + len(words)))

    def ready(self, final: bool = False) -> Iterator[Context]:
        """The contexts of the pending sentences whose right context is complete (all of them if final)."""
        while self.pending and (final or self.after >= self.size):
            start, end = self.pending.popleft()
            context = self._context(start - self.base, end - self.base)
            if self.pending:  # the next sentence starts where this one ends
                next_start, next_end = self.pending[0]
                self.after -= sum(self.lengths[next_start - self.base : next_end - self.base])
            self._trim()
            yield context

    def _context(self, start: int, end: int) -> Context:
        room = self.budget - sum(self.lengths[start:end])
        if room <= 0 or start == end:
            return _NO_CONTEXT
        before = min(self.size, sum(self.lengths[:start]))  # the run keeps >= size sub-words before
        left, right = _split_room(room, before, min(self.size, self.after))
        first, total = start, 0
        while first > 0 and total + self.lengths[first - 1] <= left:
            first -= 1
            total += self.lengths[first]
        last, total = end, 0
        while last < len(self.words) and total + self.lengths[last] <= right:
            total += self.lengths[last]
            last += 1
        while first < start and self.lengths[first] == 0:  # no word without sub-words at the outer edges
            first += 1
        while last > end and self.lengths[last - 1] == 0:
            last -= 1
        return self.words[first:start], self.words[end:last]

    def _trim(self) -> None:
        """Drop the words no later sentence can take as left context."""
        keep_from = (self.pending[0][0] if self.pending else self.base + len(self.words)) - self.base
        total, cut = 0, keep_from
        while cut > 0 and (total < self.size or self.lengths[cut - 1] == 0):
            cut -= 1
            total += self.lengths[cut]
        if cut > 0:
            del self.words[:cut], self.lengths[:cut]
            self.base += cut


def context_windows(
    sentences: Iterable[tuple[Hashable | None, Sequence[str], Sequence[int]]], size: int, budget: int
) -> Iterator[Context]:
    """The context of each sentence, in order, streamed: one ``(left words, right words)`` per input.

    Args:
        sentences: ``(document key, words, sub-word count of each word)`` per sentence, in document
            order. Consecutive sentences with the same key are one document; ``None``: a document alone.
        size: at most this many sub-words of context on each side (0: no context).
        budget: sub-words a model sequence holds besides its special tokens (``max_length`` minus them);
            the context gets only what the sentence leaves of it.

    Yields:
        ``(left, right)``: the words just before the sentence and just after it, in their order. The
        generator holds back a sentence until the sentences after it give ``size`` sub-words (or its
        document ends), so memory stays bounded on any input.
    """
    run = _Run(object(), size, budget)
    for key, words, lengths in sentences:
        if size <= 0:
            yield _NO_CONTEXT
            continue
        if key is None or key != run.key:
            yield from run.ready(final=True)
            run = _Run(key, size, budget)
        run.add(words, lengths)
        if key is None:  # a document alone: nothing before it, nothing after it
            yield from run.ready(final=True)
        else:
            yield from run.ready()
    yield from run.ready(final=True)


def sentence_contexts(
    word_lists: Sequence[Sequence[str]],
    lengths: Sequence[Sequence[int]],
    keys: Sequence[Hashable | None],
    size: int,
    budget: int,
) -> list[Context]:
    """:func:`context_windows` of a list of sentences, as a list."""
    if size <= 0:
        return [_NO_CONTEXT] * len(word_lists)
    return list(context_windows(zip(keys, word_lists, lengths, strict=True), size, budget))


def pack_contexts(
    items: Iterable[tuple[Hashable | None, Sequence[str], int, Context]], limit: int
) -> Iterator[Context]:
    """Contexts that let runs of consecutive sentences of a document share one window, streamed.

    Args:
        items: ``(document key, words, sub-word count, context)`` per sentence, in document order, the
            context from :func:`context_windows`.
        limit: at most this many sub-words of sentences in a run (0: no packing, the contexts as given).

    Yields one context per item. The sentences of a run (:func:`pack_runs`) each get the run's other
    sentences plus the left context of its first and the right context of its last, so that
    ``left + words + right`` is the same sequence for all of them: the predictor reads it once
    (docs/context.md, "Packing"). The result depends on the stream only, never on how it is later cut
    into chunks or processes.
    """
    for run in pack_runs(items, limit):
        yield from _spread([(item[1], item[3]) for item in run])


def pack_limit(context_pack: int, budget: int, context_size: int) -> int:
    """The sub-words a packed run may hold: ``context_pack``, capped at what a window of ``budget``
    sub-words (``max_length`` minus special tokens) leaves besides the two contexts; 0 without context."""
    if context_size <= 0:
        return 0
    return max(0, min(context_pack, budget - 2 * context_size))


def pack_runs(items: Iterable[Any], limit: int) -> Iterator[list[Any]]:
    """The items of :func:`pack_contexts` cut into runs, streamed, each run a list of items in order.

    An item is ``(document key, words, sub-word count, context, ...)`` (more fields ride along). A run
    is consecutive sentences of one document (same key, not None), each with context, at most ``limit``
    sub-words in all; every other sentence (longer than ``limit``, without context, or ``limit`` 0) is
    a run of its own. Training with ``context_pack`` encodes each run as one sequence.
    """
    run: list[Any] = []
    run_key: Hashable | None = None
    total = 0
    for item in items:
        key, _, size, context = item[:4]
        joins = bool(context[0] or context[1]) and key is not None
        if run and not (joins and key == run_key and total + size <= limit):
            yield run
            run, total = [], 0
        run.append(item)
        run_key, total = key, total + size
        if not joins or limit <= 0:
            yield run
            run, total = [], 0
    if run:
        yield run


def training_sequences(
    windows: list[tuple[int, int, int]],
    all_words: list[list[str]],
    sub_lists: list[list[int]],
    keys: list[Any],
    contexts: list[Context],
    limit: int,
) -> list[tuple[list[tuple[int, int, int]], Context]]:
    """The training sequences of :func:`nerfocal.encode.encode_sentences`: ``(parts, (left, right))``,
    each part a ``(sentence, word start, word end)`` window of ``all_words[sentence]``.

    Without packing every window is a sequence of its own with its sentence's context (none for a
    window of a split sentence); with ``limit``, each run of :func:`pack_runs` of whole sentences is
    one sequence, with the left context of its first sentence and the right context of its last.
    """
    whole = {i for i, a, b in windows if (a, b) == (0, len(all_words[i]))}
    split: dict[int, list[tuple[int, int, int]]] = {}
    for i, a, b in windows:
        split.setdefault(i, []).append((i, a, b))
    items = (
        (keys[i], all_words[i], sum(sub_lists[i]), contexts[i] if i in whole else _NO_CONTEXT, i)
        for i in range(len(all_words))
    )
    sequences: list[tuple[list[tuple[int, int, int]], Context]] = []
    for run in pack_runs(items, limit):  # limit 0: every sentence a run of its own
        if len(run) == 1:  # its windows (one for a sentence that fits), each with the sentence's context
            sequences.extend(([part], run[0][3]) for part in split[run[0][4]])
        else:
            parts = [(item[4], 0, len(all_words[item[4]])) for item in run]
            sequences.append((parts, (run[0][3][0], run[-1][3][1])))
    return sequences


def _spread(run: list[tuple[Sequence[str], Context]]) -> Iterator[Context]:
    """Each sentence of a run: the run's words before it (and the first's left context), and after."""
    if len(run) <= 1:
        yield from (context for _, context in run)
        return
    left, right = run[0][1][0], run[-1][1][1]
    for i in range(len(run)):
        before = [w for words, _ in run[:i] for w in words]
        after = [w for words, _ in run[i + 1 :] for w in words]
        yield [*left, *before], [*after, *right]


def merge_shared_windows(
    word_lists: Sequence[list[str]], contexts: Sequence[Context]
) -> tuple[list[list[str]], list[Context]]:
    """Consecutive sentences whose ``left + words + right`` is one sequence, merged into one unit.

    ``(units, unit contexts)``: each unit is the words of such a run of sentences, in order, with the
    left context of its first and the right context of its last, so the words keep their order and
    each window is read once (what :func:`pack_contexts` sets up, or sentences that each see all of a
    short document).
    """
    units: list[list[str]] = []
    unit_contexts: list[Context] = []
    for words, (left, right) in zip(word_lists, contexts, strict=True):
        if (
            units
            and left
            and left == unit_contexts[-1][0] + units[-1]
            and unit_contexts[-1][1] == words + right
        ):
            units[-1] = units[-1] + words
            unit_contexts[-1] = (unit_contexts[-1][0], right)
        else:
            units.append(list(words))
            unit_contexts.append((left, right))
    return units, unit_contexts
