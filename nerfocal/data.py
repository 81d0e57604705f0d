"""Read NER data (CoNLL, JSONL, Hugging Face datasets) into words and tags per split.

Pipeline: read words/tags per split -> check every tag -> normalise the tag scheme (IOB1 -> IOB2,
optional BIOES; invalid tags repaired and counted) -> build the label list from the training split ->
check (or map to O) dev/test labels unseen in training. Tokenizing and aligning is
:mod:`nerfocal.encode`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfocal.conll import Sentence, read_conll, read_jsonl, row_documents
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


FILE_FORMATS = ("auto", "conll", "jsonl", "labelstudio", "doccano", "docbin", "hf")


def resolve_format(path: str | Path, file_format: str = "auto") -> str:
    """One of :data:`FILE_FORMATS` but ``auto``: ``file_format`` itself, or from the path when ``auto``.

    ``auto``: ``.json``/``.jsonl`` files, ``.spacy`` files and dataset folders are sniffed by
    :func:`nerfocal.formats.sniff_format` (Label Studio, doccano or nerfocal JSONL by content); any
    other file is CoNLL.
    """
    if file_format == "auto":
        path = Path(path)
        if path.suffix.lower() in (".json", ".jsonl", ".spacy") or path.is_dir():
            from nerfocal.formats import sniff_format

            return sniff_format(path)
        return "conll"
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format: expected one of {', '.join(FILE_FORMATS)}, got {file_format!r}")
    return file_format


def read_file(
    path: str | Path,
    file_format: str = "auto",
    *,
    tag_column: int = -1,
    encoding: str = "utf-8",
    document_boundary: str | None = None,
    **convert_options: Any,
) -> list[Sentence]:
    """Read a labelled file: CoNLL, JSONL, or an annotation tool's export (format from the path when
    ``auto``; ``convert_options`` go to :func:`nerfocal.formats.read_sentences`).

    ``Sentence.extra["source"]`` is ``path:line``; for CoNLL, word ``i`` is on line ``Sentence.line + i``.
    ``Sentence.document`` (docs/context.md): CoNLL documents (``-DOCSTART-`` or ``document_boundary``
    lines; a file without them is one document), JSONL ``document_id``, dataset ``document_id`` columns or
    ``-DOCSTART-`` rows; annotation exports: each task a document of its own.
    """
    path = Path(path)
    fmt = resolve_format(path, file_format)
    if fmt == "conll":
        sentences = list(
            read_conll(path, tag_column=tag_column, encoding=encoding, document_boundary=document_boundary)
        )
    elif fmt == "jsonl":
        sentences = list(read_jsonl(path, encoding=encoding, require_tags=True))
    else:
        from nerfocal.formats import read_sentences

        sentences, stats = read_sentences(path, fmt, **convert_options)
        logger.info("%s: %s", path, stats.summary())
        return sentences
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

    ``ClassLabel`` tag columns (``ner_tags``) are mapped to their names; documents come from
    :func:`row_documents`.
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
        for i, (row, document) in enumerate(row_documents(split, f"{name or path}/{split_name}")):
            if row is None:
                continue
            tags = [names[t] for t in row[tag_col]] if names else [str(t) for t in row[tag_col]]
            source = {"source": f"{name or path}/{split_name}:{i}"}
            sentences.append(Sentence(list(row["tokens"]), tags, i + 1, source, document))
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
    sentences, sources, conll_paths = _read_splits(cfg)
    target = check_scheme(cfg.label_scheme)
    if target == "IOB1":
        raise ValueError(f"label_scheme: expected IOB2 or BIOES, got {cfg.label_scheme!r}")
    _check_tags(sentences, conll_paths)
    _normalise_scheme(sentences, cfg.tag_scheme, target, conll_paths, getattr(cfg, "max_train_samples", None))
    label_list = build_label_list((s.tags or [] for s in sentences["train"]), target)
    if len(label_list) == 1:
        raise ValueError(
            f"{sources['train']}: the training data has no entity tags (only O), so there is nothing to "
            "learn; expected B-/I- (or E-/S-) tags in the tag column (tag_column, default the last)"
        )
    _map_unknown_labels(sentences, label_list, cfg.unknown_labels, target, conll_paths)
    return NerData(sentences, label_list, target, sources)


Splits = dict[str, list[Sentence]]


def _read_splits(cfg: Any) -> tuple[Splits, dict[str, str], dict[str, str]]:
    """``(sentences, source name, CoNLL path)`` per split, from the hub/disk dataset and the files."""
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
                path,
                cfg.file_format,
                tag_column=cfg.tag_column,
                encoding=cfg.encoding,
                misaligned=cfg.misaligned_spans,
                text_key=cfg.text_key,
                annotator=int(cfg.annotator) if str(cfg.annotator).isdigit() else cfg.annotator,
                document_boundary=getattr(cfg, "document_boundary", None),
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

    return sentences, sources, conll_paths


def _check_tags(sentences: Splits, conll_paths: dict[str, str]) -> None:
    """Every tag is ``O`` or ``PREFIX-TYPE``; else a ``path:line`` error."""
    for split, sents in sentences.items():
        for s in sents:
            for i, tag in enumerate(s.tags or []):
                try:
                    split_tag(tag)
                except ValueError as err:
                    raise ValueError(f"{_where(s, i, conll_paths.get(split))}: {err}") from None


def _normalise_scheme(
    sentences: Splits,
    tag_scheme: str,
    target: str,
    conll_paths: dict[str, str],
    max_train_samples: int | None = None,
) -> None:
    """Convert every split from the data's scheme (given or detected on train) to ``target``, repairing
    invalid tags with the conlleval chunk rule (counted in ``Sentence.extra["repaired_tags"]``). The
    warning of the train split counts only the first ``max_train_samples`` sentences, the ones used."""
    if tag_scheme == "auto":
        source = detect_scheme(s.tags or [] for s in sentences["train"])
        logger.info("tag scheme of the data: %s (detected; set tag_scheme to override)", source)
    else:
        source = check_scheme(tag_scheme)
    for split, sents in sentences.items():
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
        limit = max_train_samples if split == "train" else None
        used = sents[:limit]
        repaired = sum(s.extra["repaired_tags"] for s in used)
        first = next((str(s.extra.get("source", split)) for s in used if s.extra["repaired_tags"]), "")
        if repaired:
            logger.warning(
                "%s: %d tag(s) in %d sentence(s)%s are not valid %s (e.g. I-X after O; first at %s); "
                "repaired with the conlleval chunk rule",
                split,
                repaired,
                sum(1 for s in used if s.extra["repaired_tags"]),
                f" of the first {limit} (max_train_samples)" if limit and limit < len(sents) else "",
                source,
                first,
            )


def _map_unknown_labels(
    sentences: Splits,
    label_list: list[str],
    unknown_labels: str,
    target: str,
    conll_paths: dict[str, str],
) -> None:
    """Dev/test labels unseen in training: an error naming ``path:line``, or (``unknown_labels=O``) O."""
    known = set(label_list)
    for split in ("validation", "test"):
        mapped: Counter[str] = Counter()
        for s in sentences.get(split, []):
            unseen = [(i, t) for i, t in enumerate(s.tags or []) if t not in known]
            if not unseen:
                continue
            if unknown_labels == "O":
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
