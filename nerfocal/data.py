"""Read NER data (CoNLL, JSONL, Hugging Face datasets) and turn it into aligned model inputs.

Pipeline: read words/tags per split -> normalise the tag scheme (IOB1 -> IOB2, optional BIOES) ->
build the label list from the training split -> tokenize with a fast tokenizer and align labels
with ``word_ids()``: the first sub-word of each word carries the word's label, the other sub-words
get ``IGNORE_INDEX`` (or, with ``label_all_tokens``, the word's label with ``B-`` turned into ``I-``).

Nothing is dropped silently: sentences longer than ``max_length`` sub-words are split into windows
(or truncated, when asked, and counted), and words that the tokenizer turns into zero sub-words
(zero-width spaces, byte-order marks, control characters) are replaced by the unknown token so that
every word still gets a prediction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfocal.conll import Sentence, read_conll, read_jsonl
from nerfocal.labels import (
    OUTSIDE,
    build_label_list,
    check_scheme,
    convert_tags,
    count_repairs,
    detect_scheme,
    split_tag,
)

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
SPLITS = ("train", "validation", "test")


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

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Window:
    """Where a model sequence comes from: sentence, first word, and each word's first sub-word position."""

    sentence_index: int
    word_offset: int
    first_subwords: list[int]


@dataclass
class NerData:
    """Sentences per split plus the label set; ``sentences[split]`` holds word-level tags."""

    sentences: dict[str, list[Sentence]]
    label_list: list[str]
    scheme: str
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.label_list)}

    def label_counts(self) -> list[int]:
        """Word-level count of each label in the training split (the frequencies pi_c)."""
        counts = Counter(t for s in self.sentences["train"] for t in s.tags or [])
        return [counts.get(label, 0) for label in self.label_list]


def resolve_format(path: str | Path, file_format: str = "auto") -> str:
    """``conll`` or ``jsonl``: ``file_format`` itself, or from the extension when ``auto``."""
    if file_format == "auto":
        return "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"
    if file_format not in ("conll", "jsonl"):
        raise ValueError(f"file_format: expected auto, conll or jsonl, got {file_format!r}")
    return file_format


def read_file(
    path: str | Path, file_format: str = "auto", *, tag_column: int = -1, encoding: str = "utf-8"
) -> list[Sentence]:
    """Read a labelled CoNLL or JSONL file (format from the extension when ``auto``).

    ``Sentence.extra["source"]`` is ``path:line``; for CoNLL, word ``i`` is on line ``Sentence.line + i``.
    """
    path = Path(path)
    fmt = resolve_format(path, file_format)
    if fmt == "conll":
        sentences = list(read_conll(path, tag_column=tag_column, encoding=encoding))
    else:
        sentences = list(read_jsonl(path, encoding=encoding, require_tags=True))
    for s in sentences:
        s.extra["source"] = f"{path}:{s.line}"
    return sentences


def _where(sentence: Sentence, word: int, conll_path: str | None) -> str:
    """Where word ``word`` of a sentence is: ``path:line`` of the word itself in a CoNLL file, else the
    sentence's ``path:line`` (JSONL record, dataset row) and the word's position."""
    if conll_path is not None and sentence.line:
        return f"{conll_path}:{sentence.line + word}"
    return f"{sentence.extra.get('source', '?')} (word {word + 1})"


def read_hf_dataset(name: str | None, config_name: str | None, path: str | None) -> dict[str, list[Sentence]]:
    """Read a Hugging Face dataset (hub name, online) or one saved with ``save_to_disk`` (offline).

    ``ClassLabel`` tag columns (``ner_tags``) are mapped to their names.
    """
    import datasets

    ds = datasets.load_from_disk(path) if path else datasets.load_dataset(name, config_name)
    out: dict[str, list[Sentence]] = {}
    aliases = {"train": "train", "validation": "validation", "dev": "validation", "test": "test"}
    for split_name, split in ds.items():
        if split_name not in aliases:
            continue
        tag_col = "ner_tags" if "ner_tags" in split.column_names else "tags"
        if "tokens" not in split.column_names or tag_col not in split.column_names:
            raise ValueError(
                f"dataset {name or path}: expected columns 'tokens' and 'ner_tags' (or 'tags'), "
                f"got {split.column_names}"
            )
        feature = split.features[tag_col].feature
        names = getattr(feature, "names", None)
        sentences = []
        for i, row in enumerate(split):
            tags = [names[t] for t in row[tag_col]] if names else [str(t) for t in row[tag_col]]
            sentences.append(
                Sentence(list(row["tokens"]), tags, i + 1, {"source": f"{name or path}/{split_name}:{i}"})
            )
        out[aliases[split_name]] = sentences
    return out


def load_ner_data(cfg: Any) -> NerData:
    """Read every configured split and normalise its tags (``cfg`` is a :class:`~nerfocal.config.DataConfig`).

    Tags that are invalid in the input scheme (``I-X`` after ``O`` in IOB2 data...) are repaired with
    the conlleval chunk rule and counted (``Sentence.extra["repaired_tags"]``, logged per split); with
    ``unknown_labels=O``, dev/test labels unseen in training become ``O`` and are counted
    (``extra["unknown_labels"]``). :func:`encode_sentences` adds both counts to its :class:`DataStats`.

    Raises:
        ValueError: no training data, a data file without any sentence, an unknown tag scheme, a
            malformed tag (naming ``path:line``), or (with ``unknown_labels=error``) a dev/test label
            never seen in training (the message lists the known labels).
    """
    sentences: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    conll_paths: dict[str, str] = {}  # split -> path, for CoNLL files (word i of a sentence: line + i)
    if cfg.dataset_name or cfg.dataset_path:
        sentences = read_hf_dataset(cfg.dataset_name, cfg.dataset_config_name, cfg.dataset_path)
        sources = {k: f"{cfg.dataset_name or cfg.dataset_path}/{k}" for k in sentences}
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    keys = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
    for split, path in files.items():
        if path:
            sentences[split] = read_file(
                path, cfg.file_format, tag_column=cfg.tag_column, encoding=cfg.encoding
            )
            sources[split] = str(path)
            if not sentences[split]:
                raise ValueError(
                    f"{keys[split]}: {path}: no sentences (the file is empty or only blank lines); "
                    "expected one token per line with its tag, sentences separated by blank lines"
                )
            if resolve_format(path, cfg.file_format) == "conll":
                conll_paths[split] = str(path)
    if not sentences.get("train"):
        raise ValueError(
            "no training data: set train_file, dataset_name or dataset_path (the train split is empty)"
        )

    target = check_scheme(cfg.label_scheme)
    if target == "IOB1":
        raise ValueError(f"label_scheme: expected IOB2 or BIOES, got {cfg.label_scheme!r}")
    for split, sents in sentences.items():
        for s in sents:
            for i, tag in enumerate(s.tags or []):
                try:
                    split_tag(tag)
                except ValueError as err:
                    raise ValueError(f"{_where(s, i, conll_paths.get(split))}: {err}") from None
    if cfg.tag_scheme == "auto":
        source = detect_scheme(s.tags or [] for s in sentences["train"])
        logger.info("tag scheme of the data: %s (detected; set tag_scheme to override)", source)
    else:
        source = check_scheme(cfg.tag_scheme)
    for split, sents in sentences.items():
        repaired, first = 0, ""
        for s in sents:
            tags = s.tags or []
            try:
                n = count_repairs(tags, source)
                s.tags = convert_tags(tags, source, target)
            except ValueError as err:  # a prefix the scheme does not use (E-/S- in IOB data)
                allowed = "BIES" if source == "BIOES" else "BI"
                i = next((i for i, t in enumerate(tags) if t != OUTSIDE and t[0] not in allowed), 0)
                raise ValueError(f"{_where(s, i, conll_paths.get(split))}: {err}") from None
            s.extra["repaired_tags"] = n
            if n and not first:
                first = str(s.extra.get("source", split))
            repaired += n
        if repaired:
            logger.warning(
                "%s: %d tag(s) in %d sentence(s) are not valid %s (e.g. I-X after O; first at %s); "
                "repaired with the conlleval chunk rule",
                split,
                repaired,
                sum(1 for s in sents if s.extra["repaired_tags"]),
                source,
                first,
            )
    label_list = build_label_list((s.tags or [] for s in sentences["train"]), target)
    if len(label_list) == 1:
        raise ValueError(
            f"{sources['train']}: the training data has no entity tags (only O), so there is nothing to "
            "learn; expected B-/I- (or E-/S-) tags in the tag column (tag_column, default the last)"
        )
    known = set(label_list)
    for split in ("validation", "test"):
        mapped: Counter[str] = Counter()
        for s in sentences.get(split, []):
            unseen = [(i, t) for i, t in enumerate(s.tags or []) if t not in known]
            if not unseen:
                continue
            if cfg.unknown_labels == "O":
                s.extra["unknown_labels"] = len(unseen)
                mapped.update(t for _, t in unseen)
                s.tags = convert_tags([t if t in known else OUTSIDE for t in s.tags or []], target, target)
            else:
                i, tag = unseen[0]
                raise ValueError(
                    f"{_where(s, i, conll_paths.get(split))}: label {tag!r} never occurs in the training "
                    f"data; known labels: {', '.join(label_list)} (set unknown_labels: O to map unseen "
                    "labels to O)"
                )
        if mapped:
            logger.warning(
                "%s: %d tag(s) never seen in training mapped to O (unknown_labels: O): %s",
                split,
                sum(mapped.values()),
                ", ".join(f"{t} x{n}" for t, n in mapped.most_common()),
            )
    return NerData(sentences, label_list, target, sources)


def _empty_word_replacement(tokenizer: Any, words: Sequence[str]) -> tuple[list[str], int]:
    """Replace words that tokenize to zero sub-words by the unknown token (counted)."""
    encoded = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    replaced = 0
    out = list(words)
    for i, ids in enumerate(encoded):
        if not ids:
            out[i] = tokenizer.unk_token or "[UNK]"
            replaced += 1
    return out, replaced


def encode_sentences(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label2id: dict[str, int] | None,
    *,
    max_length: int = 256,
    long_sentences: str = "split",
    label_all_tokens: bool = False,
) -> tuple[list[dict[str, Any]], list[Window], DataStats]:
    """Tokenize word lists and align word labels to sub-words.

    Args:
        sentences: sentences with ``tokens`` and (for training/evaluation) ``tags``.
        tokenizer: a *fast* tokenizer (``word_ids()`` is required).
        label2id: label to id; None for unlabelled data.
        max_length: maximum sub-words per sequence, special tokens included.
        long_sentences: ``split`` (windows of whole words) or ``truncate`` (counted).
        label_all_tokens: label every sub-word of a word (``B-`` becomes ``I-`` after the first).

    Returns:
        ``(features, windows, stats)``: one dict per sequence with ``input_ids``, ``attention_mask``,
        (``token_type_ids``) and ``labels`` (IGNORE_INDEX on non-first sub-words and special tokens),
        ready for ``DataCollatorForTokenClassification``; one :class:`Window` per sequence saying
        which sentence and words it covers.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("expected a fast tokenizer (one with word_ids()), got a slow one")
    if long_sentences not in ("split", "truncate"):
        raise ValueError(f"long_sentences: expected 'split' or 'truncate', got {long_sentences!r}")
    stats = DataStats(sentences=len(sentences))
    stats.repaired_tags = sum(int(s.extra.get("repaired_tags", 0)) for s in sentences)
    stats.unknown_labels = sum(int(s.extra.get("unknown_labels", 0)) for s in sentences)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(
            f"max_length: expected more than the {max_length - budget} special tokens, got {max_length}"
        )

    # 1. words with zero sub-words -> unknown token; sub-word counts per word for windowing
    all_words: list[list[str]] = []
    for s in sentences:
        words, replaced = _empty_word_replacement(tokenizer, s.tokens) if s.tokens else ([], 0)
        stats.empty_words += replaced
        stats.words += len(words)
        all_words.append(words)
    flat = [w for words in all_words for w in words]
    lengths = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []

    # 2. windows of whole words that fit the budget
    windows: list[tuple[int, int, int]] = []  # (sentence index, word start, word end)
    pos = 0
    for i, words in enumerate(all_words):
        sub = lengths[pos : pos + len(words)]
        pos += len(words)
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

    # 3. tokenize the windows in one call and align labels with word_ids()
    window_words = [all_words[i][a:b] for i, a, b in windows]
    enc = tokenizer(window_words, is_split_into_words=True, truncation=True, max_length=max_length)
    features: list[dict[str, Any]] = []
    windows_meta: list[Window] = []
    for k, (i, start, end) in enumerate(windows):
        word_ids = enc.word_ids(k)
        feature = {key: enc[key][k] for key in enc}
        if label2id is not None:
            tags = (sentences[i].tags or [])[start:end]
            feature["labels"] = _align(word_ids, tags, label2id, label_all_tokens)
        features.append(feature)
        first = [j for j, w in enumerate(word_ids) if w is not None and (j == 0 or word_ids[j - 1] != w)]
        windows_meta.append(Window(i, start, first))
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


def _align(
    word_ids: list[int | None], tags: Sequence[str], label2id: dict[str, int], label_all: bool
) -> list[int]:
    """Word tags -> sub-word ids: the first sub-word is labelled, the rest IGNORE_INDEX (or I-X)."""
    labels: list[int] = []
    previous: int | None = None
    for wid in word_ids:
        if wid is None:
            labels.append(IGNORE_INDEX)
        elif wid != previous:
            labels.append(label2id[tags[wid]])
        elif label_all:
            tag = tags[wid]
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
    out = [[OUTSIDE] * len(s.tokens) for s in sentences]
    for window, preds in zip(windows, token_preds, strict=True):
        tags = out[window.sentence_index]
        for n, j in enumerate(window.first_subwords):
            tags[window.word_offset + n] = id2label[int(preds[j])]
    return out
