"""Turn words and tags into aligned model inputs, and window predictions back into word tags.

Tokenize with a fast tokenizer and align labels with ``word_ids()``: the first sub-word of each word
carries the word's label, the other sub-words get ``IGNORE_INDEX`` (or, with ``label_all_tokens``, the
word's label with ``B-`` turned into ``I-``).

Nothing is dropped silently: sentences longer than ``max_length`` sub-words are split into windows
(or truncated, when asked, and counted), and words that the tokenizer turns into zero sub-words
(zero-width spaces, byte-order marks, control characters) are replaced by the unknown token so that
every word still gets a prediction.

With ``context_size`` (document context, :mod:`nerfocal.context`), a sentence that fits is encoded with
words of its neighbours in the same document around it; those positions are always ``IGNORE_INDEX``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nerfocal.conll import Sentence
from nerfocal.context import (
    count_documents,
    merge_shared_windows,
    pack_contexts,
    pack_limit,
    sentence_contexts,
    training_sequences,
)
from nerfocal.labels import IGNORE_INDEX, OUTSIDE

logger = logging.getLogger("nerfocal.data")


@dataclass
class DataStats:
    """What the data pipeline changed, per split; logged and saved with the run."""

    sentences: int = 0
    words: int = 0
    split_sentences: int = 0  # sentences longer than max_length, split into windows
    truncated_sentences: int = 0  # sentences longer than max_length, truncated (long_sentences=truncate)
    truncated_words: int = 0
    empty_words: int = 0  # words with zero sub-words, replaced by the unknown token
    repaired_tags: int = 0  # tags invalid in the input scheme (e.g. I-X after O in IOB2), repaired
    unknown_labels: int = 0  # labels unseen in training, mapped to O (unknown_labels=O)
    documents: int = 0  # runs of consecutive sentences of one document (docs/context.md)
    context_sentences: int = 0  # sentences encoded with some document context (context_size)
    sequences: int = 0  # model sequences (windows, packed runs of sentences with context_pack)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Window:
    """Where a model sequence comes from: sentence, first word, and each word's first sub-word position."""

    sentence_index: int
    word_offset: int
    first_subwords: list[int]


def encode_sentences(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label2id: dict[str, int] | None,
    *,
    max_length: int = 256,
    long_sentences: str = "split",
    label_all_tokens: bool = False,
    context_size: int = 0,
    context_pack: int = 0,
    outer_context: bool = True,
) -> tuple[list[dict[str, Any]], list[Window], DataStats]:
    """Tokenize word lists and align word labels to sub-words.

    Args:
        sentences: sentences with ``tokens`` and (for training/evaluation) ``tags``.
        tokenizer: a *fast* tokenizer (``word_ids()`` is required).
        label2id: label to id; None for unlabelled data.
        max_length: maximum sub-words per sequence, special tokens included.
        long_sentences: ``split`` (windows of whole words) or ``truncate`` (counted).
        label_all_tokens: label every sub-word of a word (``B-`` becomes ``I-`` after the first).
        context_size: sub-words of document context on each side (:mod:`nerfocal.context`).
        context_pack: with context, encode runs of consecutive sentences of a document of at most this
            many sub-words (:func:`nerfocal.context.pack_runs`, capped by
            :func:`~nerfocal.context.pack_limit`) as one sequence, every sentence of the run labelled,
            the run's outer context not.
        outer_context: False: the same sequences without the context around them (a packed run keeps
            its sentences together), for context dropout.

    Returns:
        ``(features, windows, stats)``: one dict per sequence with ``input_ids``, ``attention_mask``,
        (``token_type_ids``) and ``labels`` (IGNORE_INDEX on non-first sub-words and special tokens),
        ready for ``DataCollatorForTokenClassification``; one :class:`Window` per sequence saying
        which sentence and words it covers (a packed sequence: its first sentence, from which its
        ``first_subwords`` run on over the run's later sentences).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("expected a fast tokenizer (one with word_ids()), got a slow one")
    if long_sentences not in ("split", "truncate"):
        raise ValueError(f"long_sentences: expected 'split' or 'truncate', got {long_sentences!r}")
    stats = _new_stats(sentences)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(
            f"max_length: expected more than the {max_length - budget} special tokens, got {max_length}"
        )

    # 1. one tokenizer call for every word: sub-word counts for windowing, and words with zero
    # sub-words (replaced by the unknown token, one sub-word)
    flat = [w for s in sentences for w in s.tokens]
    lengths = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
    unk = tokenizer.unk_token or "[UNK]"
    all_words: list[list[str]] = []
    pos = 0
    for s in sentences:
        words = list(s.tokens)
        for j in range(len(words)):
            if lengths[pos + j] == 0:
                words[j] = unk
                lengths[pos + j] = 1
                stats.empty_words += 1
        pos += len(words)
        stats.words += len(words)
        all_words.append(words)

    # 2. windows of whole words that fit the budget; a sentence that fits gets its document context
    sub_lists, pos = [], 0
    for words in all_words:
        sub_lists.append(lengths[pos : pos + len(words)])
        pos += len(words)
    contexts = sentence_contexts(all_words, sub_lists, [s.document for s in sentences], context_size, budget)
    windows: list[tuple[int, int, int]] = []  # (sentence index, word start, word end)
    for i, words in enumerate(all_words):
        sub = sub_lists[i]
        if sum(sub) <= budget or not words:
            windows.append((i, 0, len(words)))
            continue
        if long_sentences == "truncate":
            total, end = 0, 0
            while end < len(words) and total + sub[end] <= budget:
                total += sub[end]
                end += 1
            stats.truncated_sentences += 1
            stats.truncated_words += len(words) - end
            windows.append((i, 0, max(end, 1)))
            continue
        stats.split_sentences += 1
        start = 0
        while start < len(words):
            total, end = 0, start
            while end < len(words) and (end == start or total + sub[end] <= budget):
                total += sub[end]
                end += 1
            windows.append((i, start, end))
            start = end

    # 3. the sequences: each window alone, or (context_pack) runs of whole sentences of a document
    keys = [s.document for s in sentences]
    sequences = training_sequences(
        windows, all_words, sub_lists, keys, contexts, pack_limit(context_pack, budget, context_size)
    )
    if not outer_context:
        sequences = [(parts, ([], [])) for parts, _ in sequences]

    # 4. tokenize the sequences in one call and align labels with word_ids(); context words: IGNORE_INDEX
    def own_words(parts: list[tuple[int, int, int]]) -> list[str]:
        return [w for i, a, b in parts for w in all_words[i][a:b]]

    sides = [side for _, side in sequences]
    window_words = [left + own_words(parts) + right for parts, (left, right) in sequences]
    enc = tokenizer(window_words, is_split_into_words=True, truncation=True, max_length=max_length)
    features: list[dict[str, Any]] = []
    windows_meta: list[Window] = []
    for k, (parts, _) in enumerate(sequences):
        word_ids, skip, n = enc.word_ids(k), len(sides[k][0]), sum(b - a for _, a, b in parts)
        first = [
            j
            for j, w in enumerate(word_ids)
            if w is not None and skip <= w < skip + n and (j == 0 or word_ids[j - 1] != w)
        ]
        if len(first) < n and (sides[k][0] or sides[k][1]):
            # the tokenizer counted more sub-words in context than word by word: the sentence comes first
            sides[k], skip = ([], []), 0
            single = tokenizer(
                [own_words(parts)], is_split_into_words=True, truncation=True, max_length=max_length
            )
            enc_k = {key: single[key][0] for key in single}
            word_ids = single.word_ids(0)
            first = [j for j, w in enumerate(word_ids) if w is not None and (j == 0 or word_ids[j - 1] != w)]
        else:
            enc_k = {key: enc[key][k] for key in enc}
        feature = dict(enc_k)
        if label2id is not None:
            own = [t for i, a, b in parts for t in (sentences[i].tags or [])[a:b]]
            tags: list[str | None] = [None] * skip + own + [None] * len(sides[k][1])
            feature["labels"] = _align(word_ids, tags, label2id, label_all_tokens)
        features.append(feature)
        if sides[k][0] or sides[k][1] or len(parts) > 1:
            stats.context_sentences += len(parts)
        windows_meta.append(Window(parts[0][0], parts[0][1], first))
    stats.sequences = len(features)
    if stats.split_sentences or stats.truncated_sentences or stats.empty_words:
        logger.warning(
            "%d sentences longer than %d sub-words split into windows, %d truncated (%d words lost), "
            "%d words with no sub-word replaced by %s",
            stats.split_sentences,
            max_length,
            stats.truncated_sentences,
            stats.truncated_words,
            stats.empty_words,
            tokenizer.unk_token,
        )
    return features, windows_meta, stats


def _new_stats(sentences: Sequence[Sentence]) -> DataStats:
    stats = DataStats(sentences=len(sentences), documents=count_documents(s.document for s in sentences))
    stats.repaired_tags = sum(int(s.extra.get("repaired_tags", 0)) for s in sentences)
    stats.unknown_labels = sum(int(s.extra.get("unknown_labels", 0)) for s in sentences)
    return stats


def _align(
    word_ids: list[int | None], tags: Sequence[str | None], label2id: dict[str, int], label_all: bool
) -> list[int]:
    """Word tags -> sub-word ids: the first sub-word is labelled, the rest IGNORE_INDEX (or I-X).

    A word whose tag is None (document context) is IGNORE_INDEX throughout.
    """
    labels: list[int] = []
    previous: int | None = None
    for wid in word_ids:
        if wid is None or tags[wid] is None:
            labels.append(IGNORE_INDEX)
        elif wid != previous:
            labels.append(label2id[str(tags[wid])])
        elif label_all:
            tag = str(tags[wid])
            inside = "I-" + tag[2:] if tag[:2] in ("B-", "S-") else tag
            labels.append(label2id.get(inside, label2id[tag]))
        else:
            labels.append(IGNORE_INDEX)
        previous = wid
    return labels


def word_predictions(
    windows: Sequence[Window],
    token_preds: Sequence[Sequence[int]],
    sentences: Sequence[Sentence],
    id2label: dict[int, str],
) -> list[list[str]]:
    """Rejoin window-level predictions into one tag per word of every sentence.

    ``token_preds[k][j]`` is the predicted label id at sub-word ``j`` of window ``k``; a word's label is
    read at its first sub-word. Words that got no prediction (the tail of a truncated sentence) are
    tagged ``O``, so every predicted sequence has exactly the length of its gold sequence.
    """
    flat, starts = flat_words(sentences, OUTSIDE)
    for window, preds in zip(windows, token_preds, strict=True):
        first = starts[window.sentence_index] + window.word_offset  # may run on over the next sentences
        for n, j in enumerate(window.first_subwords):
            flat[first + n] = id2label[int(preds[j])]
    return [flat[a:b] for a, b in itertools.pairwise(starts)]


def flat_words(sentences: Sequence[Sentence], fill: Any) -> tuple[list[Any], list[int]]:
    """``(one fill value per word of all the sentences, each sentence's first index and the end)``: a
    :class:`Window` reads word ``starts[sentence_index] + word_offset + n``."""
    starts = list(itertools.accumulate((len(s.tokens) for s in sentences), initial=0))
    return [fill] * starts[-1], starts


def encode_eval_windows(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label2id: dict[str, int],
    *,
    max_length: int = 256,
    stride: int | None = None,
    context_size: int = 0,
    context_pack: int = 0,
) -> tuple[list[dict[str, Any]], list[Window], DataStats]:
    """Encode dev/test sentences with the windows :class:`nerfocal.predict.Predictor` uses.

    A sentence longer than ``max_length`` sub-words becomes overlapping windows (:mod:`nerfocal.windows`)
    and each word is labelled, and later read, at its first sub-word in exactly one of them, so the
    training report, ``nerfocal evaluate`` and ``nerfocal predict --decode argmax`` score the same
    predictions. Every other position is ``IGNORE_INDEX``, so each word counts once in the loss and
    the calibration metrics. With ``context_size``, a sentence that fits gets the document context
    the Predictor gives it (:mod:`nerfocal.context`); its positions are never labelled nor read. With
    ``context_pack``, the Predictor's packed runs too: the sentences of a run share one window, read
    once, as :class:`~nerfocal.predict.Predictor` reads them.

    Returns:
        ``(features, windows, stats)`` as :func:`encode_sentences`; a window's ``first_subwords`` are
        the positions of the words it is read for, from word ``word_offset`` of sentence
        ``sentence_index`` on (running on over the next sentences in a packed run).
    """
    import torch

    from nerfocal.windows import default_stride, select_readers, tokenize_windows

    stats = _new_stats(sentences)
    all_words, sub_lists = _words_with_unknown(sentences, tokenizer, stats)
    stride = default_stride(tokenizer, max_length, stride)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    doc_keys = [s.document for s in sentences]
    contexts = sentence_contexts(all_words, sub_lists, doc_keys, context_size, budget)
    limit = pack_limit(context_pack, budget, context_size)
    units, unit_contexts = all_words, contexts
    if limit > 0:  # the sentences of a packed run read one window, read once
        items = zip(doc_keys, all_words, (sum(n) for n in sub_lists), contexts, strict=True)
        contexts = list(pack_contexts(items, limit))
        units, unit_contexts = merge_shared_windows(all_words, contexts)
    stats.context_sentences = sum(1 for left, right in contexts if left or right)
    extended = [left + words + right for words, (left, right) in zip(units, unit_contexts, strict=True)]
    input_ids, word_ids, window_docs = tokenize_windows(tokenizer, extended, max_length, stride)
    lengths = torch.tensor([len(words) for words in units])
    offsets = torch.cumsum(lengths, 0) - lengths
    starts = torch.tensor([len(left) for left, _ in unit_contexts]) if context_size else None
    selected, keys, _ = select_readers(word_ids, window_docs, offsets, int(lengths.sum()), starts, lengths)
    flat_tags = [label2id[t] for s in sentences for t in (s.tags or ["O"] * len(s.tokens))]
    sentence_starts = list(itertools.accumulate((len(words) for words in all_words), initial=0))
    features: list[dict[str, Any]] = []
    windows: list[Window] = []
    split = set()
    for k, ids in enumerate(input_ids):
        doc = int(window_docs[k])
        positions = selected[k, : len(ids)].nonzero().squeeze(1).tolist()
        labels = [IGNORE_INDEX] * len(ids)
        for j in positions:
            labels[j] = flat_tags[int(keys[k, j])]
        feature: dict[str, Any] = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
        if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
            feature["token_type_ids"] = [0] * len(ids)
        features.append(feature)
        # the sentence and word the window's first read word is (a packed unit runs on over its sentences)
        first = int(keys[k, positions[0]]) if positions else int(offsets[doc])
        if limit <= 0:  # one unit per sentence
            sentence = doc
        elif positions:
            sentence = bisect.bisect_right(sentence_starts, first) - 1
        else:  # a unit without words: its sentence is empty, the one starting there
            sentence = min(bisect.bisect_left(sentence_starts, first), len(sentences) - 1)
        windows.append(Window(sentence, first - sentence_starts[sentence], positions))
        if k and int(window_docs[k - 1]) == doc:
            split.add(doc)
    stats.split_sentences, stats.sequences = len(split), len(features)
    return features, windows, stats


def _words_with_unknown(
    sentences: Sequence[Sentence], tokenizer: Any, stats: DataStats
) -> tuple[list[list[str]], list[list[int]]]:
    """Each sentence's words, those with zero sub-words replaced by the unknown token (counted), and
    the sub-words of each word (1 for a replaced one)."""
    flat = [w for s in sentences for w in s.tokens]
    lengths = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
    unk = tokenizer.unk_token or "[UNK]"
    out: list[list[str]] = []
    subwords: list[list[int]] = []
    pos = 0
    for s in sentences:
        words = [unk if lengths[pos + j] == 0 else w for j, w in enumerate(s.tokens)]
        stats.empty_words += sum(1 for j in range(len(words)) if lengths[pos + j] == 0)
        stats.words += len(words)
        subwords.append([max(1, n) for n in lengths[pos : pos + len(words)]])
        pos += len(words)
        out.append(words)
    return out, subwords
