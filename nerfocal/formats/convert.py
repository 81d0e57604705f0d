"""Convert between annotation formats, and read any of them as training sentences.

Formats: ``conll``, ``jsonl`` (nerfocal), ``hf`` (a dataset saved to disk), ``labelstudio`` (JSON
export), ``doccano`` (JSONL), ``docbin`` (spaCy ``.spacy``). See ``docs/formats.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nerfocal.conll import Sentence
from nerfocal.formats._base import CharDocument, ConvertStats, check_policy
from nerfocal.formats.align import doc_to_sentence, sentence_to_doc
from nerfocal.labels import check_scheme, detect_scheme, spans_to_tags, tags_to_spans

logger = logging.getLogger(__name__)

FORMATS = ("conll", "jsonl", "hf", "labelstudio", "doccano", "docbin")
CHAR_FORMATS = ("labelstudio", "doccano")  # written from character spans; the others from words
_EXTENSIONS = {".conll": "conll", ".txt": "conll", ".iob": "conll", ".bio": "conll", ".spacy": "docbin"}
_DOCCANO_KEYS = ("text", "label", "labels", "entities")


def _first_record_keys(path: Path) -> set[str]:
    import json

    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return set()
                return set(record) if isinstance(record, dict) else set()
    return set()


def sniff_format(path: str | Path, *, writing: bool = False) -> str:
    """The format of ``path`` from its extension and, for reading ``.jsonl``/``.json``, its content.

    ``.conll .txt .iob .bio``: conll; ``.spacy``: docbin; a folder with ``dataset_info.json`` or
    ``dataset_dict.json`` (any folder, when writing): hf; ``.json``: labelstudio (a ``.json`` file
    of JSON lines with ``tokens`` reads as jsonl); ``.jsonl``: doccano when the first record has
    ``text``/``label``, else jsonl; when writing, ``.jsonl`` is nerfocal JSONL unless the name ends
    in ``.doccano.jsonl``.

    Raises:
        ValueError: nothing recognisable, naming the path and the accepted extensions.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    saved = (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
    if (path.is_dir() or (writing and not suffix)) and (writing or saved):
        return "hf"
    if suffix == ".jsonl":
        if writing:
            return "doccano" if path.name.lower().endswith(".doccano.jsonl") else "jsonl"
        keys = _first_record_keys(path) if path.is_file() else set()
        return "doccano" if keys & set(_DOCCANO_KEYS) and "tags" not in keys else "jsonl"
    if suffix == ".json":
        if not writing and path.is_file():
            with path.open(encoding="utf-8-sig", errors="replace") as handle:
                head = handle.read(4096).lstrip()
            if head.startswith("{") and "tokens" in _first_record_keys(path):
                return "jsonl"
        return "labelstudio"
    raise ValueError(
        f"{path}: cannot tell the format; expected .conll/.txt/.iob, .jsonl, .json (Label Studio), "
        f".spacy or a dataset folder, or pass the format ({', '.join(FORMATS)})"
    )


def _format(path: Path, given: str | None, writing: bool) -> str:
    if given is None:
        return sniff_format(path, writing=writing)
    if given not in FORMATS:
        raise ValueError(f"expected a format in {', '.join(FORMATS)}, got {given!r}")
    return given


def _read(path: Path, fmt: str, stats: ConvertStats, options: dict[str, Any]) -> list[Any]:
    """Sentences (word formats) or :class:`CharDocument` objects (labelstudio, doccano, docbin)."""
    if fmt == "conll":
        from nerfocal.formats.wordlevel import read_conll_file

        return read_conll_file(path, stats=stats)
    if fmt == "jsonl":
        from nerfocal.formats.wordlevel import read_jsonl_file

        return read_jsonl_file(path, stats=stats)
    if fmt == "hf":
        from nerfocal.formats.wordlevel import read_hf_disk

        return read_hf_disk(path, stats=stats)
    if fmt == "labelstudio":
        from nerfocal.formats.labelstudio import read_labelstudio

        return list(read_labelstudio(path, stats=stats, **options))
    if fmt == "doccano":
        from nerfocal.formats.doccano import read_doccano

        return list(read_doccano(path, stats=stats, text_key=options["text_key"]))
    from nerfocal.formats.docbin import read_docbin

    return list(read_docbin(path, stats=stats))


def _to_sentences(
    items: list[Any], stats: ConvertStats, misaligned: str, tag_scheme: str, split_pattern: str | None
) -> list[Sentence]:
    """Word-level sentences with tags in ``tag_scheme`` (auto: the input's scheme, IOB2 for text)."""
    words_in = [s for s in items if isinstance(s, Sentence)]
    if tag_scheme == "auto":
        scheme = detect_scheme(s.tags or [] for s in words_in) if words_in else "IOB2"
    else:
        scheme = check_scheme(tag_scheme)
    sentences = []
    for item in items:
        if isinstance(item, CharDocument):
            s = doc_to_sentence(
                item, misaligned=misaligned, stats=stats, scheme=scheme, split_pattern=split_pattern
            )
        else:
            s = item
            if s.tags is None:  # the word readers require tags; never invent O tags
                raise ValueError(f"{s.extra.get('source', '?')}: expected tags, the sentence has none")
            s.tags = spans_to_tags(tags_to_spans(s.tags), len(s.tags), scheme)
        if not s.tokens:
            stats.skipped += 1
            stats.notes.append(f"{s.extra.get('source', '?')}: no words; skipped")
            continue
        sentences.append(s)
    return sentences


def _options(text_key: str | None, annotator: int | str | None, misaligned: str) -> dict[str, Any]:
    return {"text_key": text_key, "annotator": annotator, "misaligned": check_policy(misaligned)}


def _finish(stats: ConvertStats, misaligned: str) -> None:
    for note in stats.notes:
        logger.info(note)
    if misaligned == "error":
        stats.raise_problems()
    for problem in stats.problems:
        logger.warning(problem)


def read_sentences(
    path: str | Path,
    format: str | None = None,
    *,
    misaligned: str = "error",
    text_key: str | None = None,
    annotator: int | str | None = None,
    tag_scheme: str = "auto",
    split_pattern: str | None = None,
) -> tuple[list[Sentence], ConvertStats]:
    """Read any supported format as labelled word-level sentences (for ``train_file: export.json``).

    Args:
        path: the file (or dataset folder).
        format: one of :data:`FORMATS`; None: :func:`sniff_format`.
        misaligned: what to do with spans whose edges fall inside a word and with overlapping spans:
            ``error`` (raise one ``ValueError`` listing them all), ``snap`` or ``drop``.
        text_key: the field with the text (Label Studio ``data``, doccano records).
        annotator: which Label Studio annotation to read (see
            :func:`~nerfocal.formats.labelstudio.choose_annotation`).
        tag_scheme: ``auto`` (the file's scheme; IOB2 for text formats), ``IOB1``, ``IOB2`` or ``BIOES``.
        split_pattern: the word regex for text formats (default: the one ``nerfocal predict`` uses).

    Returns:
        The sentences (``extra["source"]`` names the file and record) and the counts.

    Raises:
        ValueError: malformed input (naming the file and record), or span problems under ``error``.
    """
    path = Path(path)
    stats = ConvertStats()
    items = _read(path, _format(path, format, False), stats, _options(text_key, annotator, misaligned))
    sentences = _to_sentences(items, stats, misaligned, tag_scheme, split_pattern)
    stats.documents = len(sentences)
    stats.entities_out = sum(len(tags_to_spans(s.tags or [])) for s in sentences)
    _finish(stats, misaligned)
    return sentences, stats


def convert(
    src: str | Path,
    dst: str | Path,
    from_format: str | None = None,
    to_format: str | None = None,
    *,
    misaligned: str = "error",
    text_key: str | None = None,
    annotator: int | str | None = None,
    tag_scheme: str = "auto",
    split_pattern: str | None = None,
) -> ConvertStats:
    """Convert ``src`` to ``dst`` (written atomically: on any error ``dst`` is left as it was).

    Text -> words follows :func:`read_sentences`; words -> text joins the words with single spaces.
    Between two text formats the spans are copied as they are (no word split involved).
    Arguments as :func:`read_sentences`; ``tag_scheme`` is the scheme written to word formats.

    Raises:
        ValueError: ``dst`` is ``src``, an unknown format, malformed input, or (``misaligned="error"``)
            any span problem, all listed, before anything is written.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"{dst}: expected an output different from the input {src}")
    fmt_in, fmt_out = _format(src, from_format, False), _format(dst, to_format, True)
    stats = ConvertStats()
    items = _read(src, fmt_in, stats, _options(text_key, annotator, misaligned))
    if fmt_out in CHAR_FORMATS:
        docs = [
            i if isinstance(i, CharDocument) else sentence_to_doc(i, i.extra.get("source", "?"))
            for i in items
        ]
        _finish(stats, misaligned)
        if fmt_out == "labelstudio":
            from nerfocal.formats.labelstudio import write_labelstudio

            write_labelstudio(dst, docs, stats)
        else:
            from nerfocal.formats.doccano import write_doccano

            write_doccano(dst, docs, stats)
    else:
        sentences = _to_sentences(items, stats, misaligned, tag_scheme, split_pattern)
        _finish(stats, misaligned)
        _write_words(dst, fmt_out, sentences, stats, tag_scheme)
    logger.info("%s -> %s: %s", src, dst, stats.summary())
    return stats


def _write_words(
    dst: Path, fmt: str, sentences: list[Sentence], stats: ConvertStats, tag_scheme: str
) -> None:
    from nerfocal.formats import wordlevel

    if fmt == "conll":
        wordlevel.write_conll_file(dst, sentences, stats)
    elif fmt == "jsonl":
        wordlevel.write_jsonl_file(dst, sentences, stats)
    elif fmt == "hf":
        # the tags are already in the output scheme; auto finds it again (IOB2 for IOB2-like data)
        scheme = detect_scheme(s.tags or [] for s in sentences) if tag_scheme == "auto" else tag_scheme
        wordlevel.write_hf_disk(dst, sentences, stats, scheme)
    else:
        from nerfocal.formats.docbin import write_docbin

        write_docbin(dst, sentences, stats)
