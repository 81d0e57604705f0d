"""Shared pieces of the format converters: the character-offset document, the counts, file helpers.

Standard library only. ``atomic_open`` is imported here and nowhere else in the package, so that
moving it (to ``nerfocal.io``) is a one-line change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfocal.conll import load_json_line
from nerfocal.io import atomic_open, locate_decode_error

__all__ = [
    "MAX_LISTED",
    "POLICIES",
    "CharDocument",
    "ConvertStats",
    "atomic_open",
    "check_char_span",
    "check_policy",
    "choose_text",
    "jsonl_records",
    "load_json_file",
    "locate_tokens",
]

POLICIES = ("error", "snap", "drop")
MAX_LISTED = 20  # problems listed in full in an error message; the rest are counted


@dataclass
class CharDocument:
    """One text with character-offset entity spans (Label Studio task, doccano line, spaCy Doc).

    Attributes:
        text: the document text.
        spans: ``(start, end, label)``, ``end`` exclusive, in characters (code points) of ``text``.
        id: where the document comes from, for messages: ``"path: task 7"``, ``"path:3"``.
        words: the document's own word offsets (``(start, end)``, e.g. spaCy tokens or a ``tokens``
            list stored with the text); None: split with the word pattern.
    """

    text: str
    spans: list[tuple[int, int, str]]
    id: str = "?"
    words: list[tuple[int, int]] | None = None


@dataclass
class ConvertStats:
    """What a conversion read, wrote and changed.

    ``problems`` are the span problems that ``misaligned`` governs (edges inside a word, overlaps,
    span text that does not match the offsets, spans covering no word), each with what was done
    under snap/drop; under error a conversion with any problem raises instead (:meth:`raise_problems`).
    ``notes`` are the documents that were skipped (a Label Studio task without a usable annotation).
    """

    documents: int = 0  # documents written (or returned)
    entities_in: int = 0  # entity spans read
    entities_out: int = 0  # entity spans written (or returned)
    snapped: int = 0  # spans moved to word boundaries (misaligned=snap)
    dropped: int = 0  # spans removed (misaligned/overlapping, under snap or drop)
    duplicates: int = 0  # exact duplicate spans merged into one
    skipped: int = 0  # documents not converted (see notes)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A one-line account, for the log and the command line."""
        return (
            f"{self.documents} documents, {self.entities_in} entities read, {self.entities_out} written "
            f"({self.snapped} snapped, {self.dropped} dropped, {self.duplicates} duplicates merged), "
            f"{self.skipped} documents skipped, {len(self.problems)} problems"
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def raise_problems(self) -> None:
        """Raise one ``ValueError`` listing the problems (first :data:`MAX_LISTED` and a count), if any."""
        if not self.problems:
            return
        listed = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ValueError(
            f"{len(self.problems)} entity span problem(s); pass misaligned='snap' (move edges to word "
            f"boundaries, keep the longest of overlapping spans) or 'drop' to convert anyway:\n  "
            f"{listed}{tail}"
        )


def check_policy(misaligned: str) -> str:
    if misaligned not in POLICIES:
        raise ValueError(f"misaligned: expected one of {', '.join(POLICIES)}, got {misaligned!r}")
    return misaligned


def check_char_span(text: str, start: Any, end: Any, label: Any, where: str) -> tuple[int, int, str]:
    """Validate one character span; a ``ValueError`` naming ``where`` for anything unusable.

    Raises:
        ValueError: offsets that are not integers, beyond the text, empty or reversed; a label that
            is not a non-empty string; a span of only whitespace.
    """
    if not isinstance(label, str) or not label or any(c.isspace() for c in label):
        raise ValueError(f"{where}: expected a label without whitespace, got {label!r}")
    if type(start) is not int or type(end) is not int:
        raise ValueError(f"{where}: expected integer start/end offsets, got {start!r}, {end!r} ({label})")
    if not 0 <= start <= end <= len(text):
        raise ValueError(
            f"{where}: span [{start}, {end}) {label}: offsets beyond the text "
            f"(expected 0 <= start <= end <= {len(text)}, the text's length)"
        )
    if start == end or not text[start:end].strip():
        raise ValueError(
            f"{where}: span [{start}, {end}) {label}: expected some text, got an empty or whitespace-only "
            f"span {text[start:end]!r}"
        )
    return start, end, label


def choose_text(data: Any, text_key: str | None, where: str) -> str:
    """The text of a record: ``data[text_key]``, else ``data["text"]``, else its only string value."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object with the text, got {type(data).__name__}")
    if text_key is None:
        strings = [k for k, v in data.items() if isinstance(v, str)]
        if "text" in data:
            text_key = "text"
        elif len(strings) == 1:
            text_key = strings[0]
        else:
            raise ValueError(
                f"{where}: expected a 'text' key or a single string field, got keys {sorted(data)}; "
                "pass text_key (--text-key) to name the field with the text"
            )
    if text_key not in data:
        raise ValueError(f"{where}: missing text key {text_key!r}; keys are {sorted(data)}")
    text = data[text_key]
    if not isinstance(text, str):
        raise ValueError(f"{where}: expected {text_key!r} to be a string, got {type(text).__name__}")
    return text


def locate_tokens(text: str, tokens: Any, where: str) -> list[tuple[int, int]]:
    """Offsets of ``tokens`` found in order in ``text``, separated only by whitespace.

    Raises:
        ValueError: tokens that are not non-empty strings, or that do not spell the text.
    """
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise ValueError(f"{where}: expected 'tokens' to be a list of non-empty strings")
    offsets, pos = [], 0
    for i, token in enumerate(tokens):
        start = pos
        while start < len(text) and text[start].isspace() and not token[0].isspace():
            start += 1
        if text[start : start + len(token)] != token:
            raise ValueError(
                f"{where}: 'tokens' do not spell the text: token {i} {token!r} not found at character "
                f"{start} (found {text[start : start + len(token)]!r}); remove the 'tokens' key to split "
                "the text with the word pattern"
            )
        offsets.append((start, start + len(token)))
        pos = start + len(token)
    if text[pos:].strip():
        raise ValueError(f"{where}: 'tokens' do not spell the text: {text[pos:][:40]!r} left over")
    return offsets


def _decode_message(path: Path, err: UnicodeDecodeError) -> str:
    found = locate_decode_error(path, "utf-8")
    where = f"{path}:{found[0]}" if found else str(path)
    return f"{where}: file is not valid UTF-8 ({err.reason})"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: expected a file, got a directory")


def load_json_file(path: Path) -> Any:
    """``json.load`` of a whole file, errors as one-line ``ValueError`` naming ``path:line``."""
    _check_file(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(_decode_message(path, err)) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg}, column {err.colno})") from None
    except RecursionError:
        raise ValueError(f"{path}: invalid JSON (nested too deeply)") from None


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed record)`` for each non-blank line of a JSONL file."""
    _check_file(path)
    try:
        with path.open(encoding="utf-8-sig", newline=None) as handle:
            for line_no, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield line_no, load_json_line(raw, f"{path}:{line_no}")
    except UnicodeDecodeError as err:
        raise ValueError(_decode_message(path, err)) from None
