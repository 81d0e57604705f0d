"""Label sets, tag-scheme conversion (IOB1 / IOB2 / BIOES) and tags -> spans.

Standard library only: the inference code imports this module, so it must stay light.

Conventions:
    * A tag is ``"O"`` or ``"<P>-<TYPE>"`` with prefix ``P`` in ``B I E S``.
    * IOB1 (CoNLL-2003): a chunk starts with ``I-``; ``B-`` only marks the start of a chunk that
      directly follows a chunk of the same type.
    * IOB2: every chunk starts with ``B-``.
    * BIOES: ``S-`` for single-token chunks, ``E-`` ends a multi-token chunk. BILOU is the same
      scheme with other letters: ``L-`` (last) is read as ``E-``, ``U-`` (unit) as ``S-``.
    * Spans are ``(type, start, end)`` with ``end`` exclusive, in word indices.

Chunks follow the conlleval rule: a chunk starts at each ``B-X`` (``S-X``), and at each ``I-X``
(``E-X``) after ``O`` or after a chunk of a different type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

OUTSIDE = "O"
# the label id of positions that no loss, count or metric sees (sub-word continuations, specials, padding)
IGNORE_INDEX = -100
SCHEMES = ("IOB1", "IOB2", "BIOES")
_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}
_BILOU = {"L": "E", "U": "S"}  # BILOU letters -> their BIOES equivalents


def split_tag(tag: str) -> tuple[str, str]:
    """Split ``"B-PER"`` into ``("B", "PER")``; ``"O"`` gives ``("O", "")``.

    BILOU prefixes come out as their BIOES letters: ``"L-PER"`` gives ``("E", "PER")``, ``"U-PER"``
    ``("S", "PER")``.

    Raises:
        ValueError: if the tag is neither ``O`` nor ``<B|I|E|S|L|U>-<TYPE>``.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, etype = tag.partition("-")
    prefix = _BILOU.get(prefix, prefix)
    if sep != "-" or prefix not in ("B", "I", "E", "S") or not etype:
        raise ValueError(f"expected a tag 'O' or '<B|I|E|S|L|U>-<TYPE>', got {tag!r}")
    return prefix, etype


def check_scheme(scheme: str) -> str:
    """Return the canonical (upper-case) scheme name or raise ``ValueError``."""
    canonical = scheme.upper().replace("BILOU", "BIOES")
    if canonical not in SCHEMES:
        raise ValueError(f"expected a tag scheme in {SCHEMES}, got {scheme!r}")
    return canonical


def tags_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity chunks of a tag sequence in any of the three schemes.

    Args:
        tags: one tag per word.

    Returns:
        ``(type, start, end)`` per chunk, ``end`` exclusive, in order.
    """
    spans: list[tuple[str, int, int]] = []
    start, current = -1, ""
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        begins = prefix in ("B", "S") or (prefix in ("I", "E") and etype != current)
        if current and (prefix == OUTSIDE or begins):
            spans.append((current, start, i))
            current = ""
        if prefix != OUTSIDE and begins:
            start, current = i, etype
        if current and prefix in ("E", "S"):
            spans.append((current, start, i + 1))
            current = ""
    if current:
        spans.append((current, start, len(tags)))
    return spans


def spans_to_tags(spans: Iterable[tuple[str, int, int]], length: int, scheme: str = "IOB2") -> list[str]:
    """Inverse of :func:`tags_to_spans` for non-overlapping spans."""
    scheme = check_scheme(scheme)
    tags = [OUTSIDE] * length
    previous_end, previous_type = -1, ""
    for etype, start, end in sorted(spans, key=lambda s: s[1]):
        if not 0 <= start < end <= length:
            raise ValueError(f"expected 0 <= start < end <= {length}, got span ({etype}, {start}, {end})")
        if any(t != OUTSIDE for t in tags[start:end]):
            raise ValueError(f"expected non-overlapping spans, got ({etype}, {start}, {end}) overlapping")
        if scheme == "BIOES" and end - start == 1:
            tags[start] = f"S-{etype}"
            continue
        tags[start:end] = [f"I-{etype}"] * (end - start)
        if scheme == "IOB2" or scheme == "BIOES" or (previous_end == start and previous_type == etype):
            tags[start] = f"B-{etype}"
        if scheme == "BIOES":
            tags[end - 1] = f"E-{etype}"
        previous_end, previous_type = end, etype
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert a tag sequence between IOB1, IOB2 and BIOES (chunks are kept exactly).

    The output is always valid in ``target``, also when ``source == target``: tags that are invalid in
    their scheme (``I-X`` after ``O`` in IOB2, a lone ``B-X`` in BIOES...) are read with the conlleval
    chunk rule and rewritten (see :func:`count_repairs`).

    Raises:
        ValueError: an unknown scheme, a malformed tag, or a prefix the source scheme does not use.
    """
    source, target = check_scheme(source), check_scheme(target)
    _check_prefixes(tags, source)
    return spans_to_tags(tags_to_spans(tags), len(tags), target)


def _check_prefixes(tags: Sequence[str], scheme: str) -> None:
    allowed = _PREFIXES[scheme]
    for tag in tags:
        prefix, _ = split_tag(tag)
        if prefix != OUTSIDE and prefix not in allowed:
            raise ValueError(f"expected {scheme} tags (prefixes {'/'.join(allowed)}), got {tag!r}")


def count_repairs(tags: Sequence[str], scheme: str) -> int:
    """Number of tags that are not valid in ``scheme`` and that :func:`convert_tags` rewrites.

    The chunks are read with the conlleval rule, as IOB1 and conlleval do: ``I-X`` after ``O`` or after
    another type starts a chunk (IOB2 repairs it to ``B-X``); in BIOES a chunk left open becomes
    ``E-X``/``S-X``. Valid sequences give 0.

    Raises:
        ValueError: as :func:`convert_tags`.
    """
    scheme = check_scheme(scheme)
    _check_prefixes(tags, scheme)
    canonical = spans_to_tags(tags_to_spans(tags), len(tags), scheme)
    spelled = [_BILOU[t[0]] + t[1:] if t[:1] in _BILOU else t for t in tags]  # L-/U- are not repairs
    return sum(a != b for a, b in zip(spelled, canonical, strict=True))


def count_invalid_iob2(tags: Sequence[str]) -> int:
    """Count ``I-X`` tags that follow ``O``, a sentence start, or another type (invalid in IOB2)."""
    invalid, previous = 0, ""
    for tag in tags:
        prefix, etype = split_tag(tag)
        if prefix == "I" and previous != etype:
            invalid += 1
        previous = etype if prefix != OUTSIDE else ""
    return invalid


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of labelled data: BIOES if any E-/S- (or BILOU L-/U-) tag; else IOB1 if more
    chunks start with ``I-`` than with ``B-``, else IOB2.

    IOB1 data (CoNLL-2003) starts almost every chunk with ``I-`` and uses ``B-`` only between two
    adjacent chunks of one type; IOB2 data starts every chunk with ``B-``, so a few ``I-X`` after ``O``
    in IOB2 data are errors to repair (:func:`count_repairs`), not a sign of IOB1.
    """
    starts = {"B": 0, "I": 0}
    for tags in sequences:
        previous = ""
        for tag in tags:
            prefix, etype = split_tag(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            if prefix in starts and etype != previous:
                starts[prefix] += 1
            previous = etype if prefix != OUTSIDE else ""
    return "IOB1" if starts["I"] > starts["B"] else "IOB2"


def build_label_list(sequences: Iterable[Sequence[str]], scheme: str = "IOB2") -> list[str]:
    """A stable label order: ``O`` first, then types sorted by name, each with its prefixes in B I E S order.

    Every prefix of the scheme is included for every type seen, so that a model can emit ``I-X``
    even if ``X`` occurred only as single-word chunks in training.
    """
    scheme = check_scheme(scheme)
    types = {split_tag(t)[1] for tags in sequences for t in tags} - {""}
    prefixes = "BIES" if scheme == "BIOES" else "BI"
    return [OUTSIDE] + [f"{p}-{etype}" for etype in sorted(types) for p in prefixes]
