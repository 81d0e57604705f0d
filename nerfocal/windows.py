"""The one windowing scheme of evaluation and prediction: overlapping sub-word windows, one reader per word.

A sentence (or document) longer than ``max_length`` sub-words is cut by the fast tokenizer into windows
that share ``stride`` tokens; each word is then read from exactly one window: the one where its first
sub-word has the most context on both sides (ties: the earlier window). :class:`nerfocal.predict.Predictor`
uses it on raw input; the training run's evaluation (:func:`nerfocal.encode.encode_eval_windows`, used
by ``Trainer.predict`` on dev and test) uses the same functions, so a model scores the same entities in
its training report, in ``nerfocal evaluate`` and in ``nerfocal predict --decode argmax``. With
document context (:mod:`nerfocal.context`) a sequence holds context words around the sentence; they
are never read.

torch and the tokenizer only; no training code.
"""

from __future__ import annotations

from typing import Any

import torch


def default_stride(tokenizer: Any, max_length: int, stride: int | None = None) -> int:
    """Tokens shared by consecutive windows: ``stride``, or a quarter of the content tokens."""
    content = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if content < 2:
        raise ValueError(f"expected max_length to leave >= 2 tokens for words, got {max_length}")
    return min(max(stride if stride is not None else content // 4, 1), content - 1)


def tokenize_windows(
    tokenizer: Any, word_lists: list[list[str]], max_length: int, stride: int
) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Sub-word ids per window, word ids (long ``[R, L]``, -1 off words), window documents (long ``[R]``)."""
    encoded = tokenizer(
        word_lists,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    input_ids: list[list[int]] = encoded["input_ids"]
    window_docs = torch.tensor(encoded["overflow_to_sample_mapping"], dtype=torch.long)
    lengths = torch.tensor([len(ids) for ids in input_ids])
    flat = [-1 if w is None else w for e in encoded.encodings for w in e.word_ids]
    word_ids = torch.full((len(input_ids), int(lengths.max())), -1, dtype=torch.long)
    word_ids[torch.arange(word_ids.shape[1]) < lengths[:, None]] = torch.tensor(flat, dtype=torch.long)
    return input_ids, word_ids, window_docs


def select_readers(
    word_ids: torch.Tensor,
    window_docs: torch.Tensor,
    word_offsets: torch.Tensor,
    total: int,
    first_words: torch.Tensor | None = None,
    word_counts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each word, the one window position that predicts it: its first sub-word in the window
    where that sub-word has the most context (ties: the earlier window).

    Args:
        word_ids: long ``[R, L]`` from :func:`tokenize_windows`.
        window_docs: long ``[R]``, the document of each window.
        word_offsets: long ``[D]``, index of each document's first word in the flat word list.
        total: number of words over all documents.
        first_words, word_counts: long ``[D]``: only words ``first_words[d]`` to
            ``first_words[d] + word_counts[d] - 1`` of document ``d`` are read (the others are document
            context, :mod:`nerfocal.context`), and the flat word list holds only those; None: all words.

    Returns:
        ``selected`` (bool ``[R, L]``), ``keys`` (long ``[R, L]``, flat word index) and
        ``covered`` (bool ``[total]``: the word has at least one sub-word).
    """
    n_windows, width = word_ids.shape
    positions = torch.arange(width).expand(n_windows, width)
    content = word_ids >= 0
    first = content.int().argmax(1, keepdim=True)  # [R, 1] first word position in the window
    last = width - 1 - content.flip(1).int().argmax(1, keepdim=True)
    doc_first = torch.ones(n_windows, 1, dtype=torch.bool)
    doc_first[1:, 0] = window_docs[1:] != window_docs[:-1]
    doc_last = torch.ones(n_windows, 1, dtype=torch.bool)
    doc_last[:-1, 0] = window_docs[:-1] != window_docs[1:]
    previous = torch.cat([torch.full((n_windows, 1), -1), word_ids[:, :-1]], dim=1)
    readable, local = content, word_ids
    if first_words is not None and word_counts is not None:
        local = word_ids - first_words[window_docs][:, None]  # [R, L] index among the read words
        readable = content & (local >= 0) & (local < word_counts[window_docs][:, None])
    # a window's first position may continue a word begun in the previous window: not a start
    candidate = readable & (word_ids != previous) & ((positions != first) | doc_first)
    left = torch.where(doc_first, width, positions - first)
    right = torch.where(doc_last, width, last - positions)
    priority = torch.minimum(left, right) * (n_windows + 1) + (n_windows - torch.arange(n_windows))[:, None]
    keys = word_offsets[window_docs][:, None] + local.clamp(min=0)
    if first_words is not None and total:
        keys = torch.where(readable, keys, torch.zeros_like(keys))  # context positions: any valid index
    best = torch.full((total,), -1, dtype=torch.long)
    best.scatter_reduce_(0, keys[candidate], priority[candidate], reduce="amax")
    # positions that read no word (special tokens, an empty last sentence) may point past the end
    selected = candidate & (priority == best[keys.clamp(max=max(total - 1, 0))]) if total else candidate
    return selected, keys, best >= 0
