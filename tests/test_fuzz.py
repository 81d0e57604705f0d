"""Property-based tests (hypothesis): readers, tag schemes, spans and alignment never fail other than with
their documented errors, and every round trip is exact. See docs/robustness.md.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures import LABELS, build_tokenizer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nerfocal.config import parse_alpha
from nerfocal.conll import DataFormatError, Sentence, parse_record, read_conll, read_jsonl, write_conll
from nerfocal.encode import encode_sentences, word_predictions
from nerfocal.labels import (
    SCHEMES,
    convert_tags,
    count_repairs,
    detect_scheme,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW_FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

TYPES = ["PER", "LOC", "X-Y"]  # a hyphen inside a type is allowed: only the first one splits
PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}


def _tags(prefixes: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("O"), st.builds("{}-{}".format, st.sampled_from(prefixes), st.sampled_from(TYPES))
    )


@st.composite
def spans_and_length(draw: Callable[..., Any]) -> tuple[list[tuple[str, int, int]], int]:
    """Non-overlapping spans over a sentence (adjacent spans of one type included)."""
    length = draw(st.integers(0, 25))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=12)))
    spans = []
    for start, end in itertools.pairwise(cuts):
        if draw(st.booleans()):
            spans.append((draw(st.sampled_from(TYPES)), start, end))
    return spans, length


# --- readers ------------------------------------------------------------------------------------------


def _utf8(parts: list[str]) -> bytes:
    return "".join(parts).encode("utf-8")


CONLL_ALPHABET = st.sampled_from(
    [" ", "\t", "\n", "\r", "\r\n", "\ufeff", "\u200b", "-DOCSTART-", "B-PER", "I-LOC", "O", "x", "é", "\x00"]
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300), st.lists(CONLL_ALPHABET, max_size=80).map(lambda p: "".join(p).encode())
    ),
    st.sampled_from([-1, None, 1]),
)
def test_conll_reader_raises_only_data_format_errors(tmp_path: Path, content: bytes, tag_column: Any) -> None:
    path = tmp_path / "fuzz.conll"
    path.write_bytes(content)
    try:
        sentences = list(read_conll(path, tag_column=tag_column))
    except DataFormatError as err:
        assert str(err).startswith(f"{path}:") and "\n" not in str(err)
        return
    for s in sentences:
        assert s.tokens and all(t and not any(c.isspace() for c in t) for t in s.tokens)
        assert s.tags is None if tag_column is None else len(s.tags or []) == len(s.tokens)


TOKEN = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8).filter(
    lambda t: not any(c.isspace() for c in t) and t != "-DOCSTART-"
)


@FUZZ
@given(st.lists(st.lists(st.tuples(TOKEN, _tags("BIES")), min_size=1, max_size=6), max_size=6))
def test_conll_write_then_read_is_exact(tmp_path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    # documented exception: a U+FEFF at the very start of a file is read as a byte-order mark
    assume(not sentences or not sentences[0][0][0].startswith("\ufeff"))
    rows = [([w for w, _ in s], [t for _, t in s]) for s in sentences]
    path = tmp_path / "round.conll"
    write_conll(path, rows)
    assert [(s.tokens, s.tags) for s in read_conll(path)] == rows


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children)
    ),
    max_leaves=12,
)
RECORDS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"tokens": st.one_of(st.lists(st.text(max_size=4), max_size=4), JSON_VALUES)},
        optional={"tags": st.one_of(st.lists(_tags("BIES"), max_size=4), JSON_VALUES), "id": JSON_VALUES},
    ),
)


@FUZZ
@given(RECORDS, st.booleans())
def test_jsonl_records_parse_or_raise_a_data_format_error(record: Any, require_tags: bool) -> None:
    try:
        sentence = parse_record(record, "f.jsonl:1", 1, require_tags=require_tags)
    except DataFormatError as err:
        assert str(err).startswith("f.jsonl:1: ")
        return
    assert isinstance(record, dict) and sentence.tokens == record["tokens"]
    assert sentence.tags is None or len(sentence.tags) == len(sentence.tokens)


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=30), RECORDS.map(json.dumps)), max_size=6))
def test_jsonl_reader_raises_only_data_format_errors(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines), encoding="utf-8")
    try:
        list(read_jsonl(path))
    except DataFormatError as err:
        assert str(err).startswith(f"{path}:") and "\n" not in str(err)


@FUZZ
@given(
    st.lists(
        st.tuples(st.lists(TOKEN, max_size=5), st.dictionaries(st.text(max_size=9), JSON_VALUES, max_size=3)),
        max_size=5,
    )
)
def test_jsonl_round_trip_is_exact(tmp_path: Path, records: list[tuple[list[str], dict[str, Any]]]) -> None:
    # "ner_tags" is read as the tags (an alias), so it is not carried as an extra field
    rows = [
        {**{k: v for k, v in extra.items() if k != "ner_tags"}, "tokens": tokens, "tags": ["O"] * len(tokens)}
        for tokens, extra in records
    ]
    path = tmp_path / "round.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    back = list(read_jsonl(path))
    assert [{**s.extra, "tokens": s.tokens, "tags": s.tags} for s in back] == rows


@pytest.mark.parametrize("line", ["[" * 50_000, '{"tokens": ["\\ud800"], "tags": ["O"]}'])
def test_pathological_json_lines_are_data_format_errors(tmp_path: Path, line: str) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"odd.jsonl:1: (invalid JSON|expected Unicode text)"):
        list(read_jsonl(path))


# --- tag schemes and spans ----------------------------------------------------------------------------


@FUZZ
@given(spans_and_length())
def test_spans_round_trip_exactly_through_every_scheme(case: tuple[list[tuple[str, int, int]], int]) -> None:
    spans, length = case
    canonical = {scheme: spans_to_tags(spans, length, scheme) for scheme in SCHEMES}
    for source, tags in canonical.items():
        assert tags_to_spans(tags) == spans
        assert count_repairs(tags, source) == 0
        for target in SCHEMES:
            assert convert_tags(tags, source, target) == canonical[target]
    if spans:
        for scheme in SCHEMES:
            assert detect_scheme([canonical[scheme]]) == scheme


@FUZZ
@given(st.sampled_from(SCHEMES), st.sampled_from(SCHEMES), st.data())
def test_any_tag_sequence_converts_to_a_valid_one_with_the_same_chunks(
    source: str, target: str, data: st.DataObject
) -> None:
    tags = data.draw(st.lists(_tags(PREFIXES[source]), max_size=25))
    converted = convert_tags(tags, source, target)
    assert len(converted) == len(tags)
    assert tags_to_spans(converted) == tags_to_spans(tags)  # repairs never move a chunk
    assert count_repairs(converted, target) == 0
    assert convert_tags(converted, target, target) == converted
    repaired = count_repairs(tags, source)
    assert (repaired == 0) == (convert_tags(tags, source, source) == list(tags))


@FUZZ
@given(st.lists(st.text(max_size=6), max_size=8), st.sampled_from([*SCHEMES, "BILOU", "IOBX", ""]))
def test_arbitrary_strings_as_tags_raise_only_value_errors(tags: list[str], scheme: str) -> None:
    for function in (
        lambda: [split_tag(t) for t in tags],
        lambda: tags_to_spans(tags),
        lambda: convert_tags(tags, scheme, "IOB2"),
        lambda: count_repairs(tags, scheme),
        lambda: detect_scheme([tags]),
    ):
        try:
            function()
        except ValueError as err:
            assert "expected" in str(err)


@FUZZ
@given(
    st.lists(st.tuples(st.sampled_from(TYPES), st.integers(-2, 12), st.integers(-2, 12)), max_size=5),
    st.integers(0, 10),
)
def test_spans_to_tags_accepts_valid_spans_and_rejects_the_rest(
    spans: list[tuple[str, int, int]], length: int
) -> None:
    try:
        tags = spans_to_tags(spans, length, "IOB2")
    except ValueError as err:
        assert "expected" in str(err)
        return
    assert tags_to_spans(tags) == sorted(spans, key=lambda s: s[1])


# --- config and alignment ------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(JSON_VALUES, st.text(max_size=12), JSON_VALUES.map(json.dumps)))
def test_alpha_parses_or_raises_a_value_error_naming_it(value: Any) -> None:
    try:
        alpha = parse_alpha(value)
    except ValueError as err:
        assert str(err).startswith("alpha: expected")
        return
    assert alpha is None or alpha == "auto" or isinstance(alpha, (float, list, dict))


YAML_KEYS = [
    "gamma",
    "max_length",
    "label_all_tokens",
    "alpha",
    "tag_scheme",
    "learning_rate",
    "eval_strategy",
]


@SLOW_FUZZ
@given(
    st.sampled_from(YAML_KEYS),
    st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(-1, 2), st.text(max_size=6)),
)
def test_any_yaml_scalar_is_accepted_or_a_value_error_naming_the_key(
    tmp_path: Path, key: str, value: Any
) -> None:
    import yaml

    from nerfocal.config import parse_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({key: value}), encoding="utf-8")
    try:
        parse_config([str(path)])
    except ValueError as err:
        assert key in str(err) and "\n" not in str(err)


WORD = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6).filter(
    lambda w: w.strip() == w and bool(w.strip())
)


@SLOW_FUZZ
@given(st.lists(st.lists(WORD, min_size=1, max_size=30), min_size=1, max_size=4), st.integers(6, 40))
def test_every_word_gets_exactly_one_prediction_whatever_the_text_and_max_length(
    word_lists: list[list[str]], max_length: int
) -> None:
    label2id = {label: i for i, label in enumerate(LABELS)}
    sentences = [Sentence(words, ["O"] * len(words)) for words in word_lists]
    features, windows, stats = encode_sentences(sentences, build_tokenizer(), label2id, max_length=max_length)
    assert all(len(f["input_ids"]) <= max_length for f in features)
    for i, words in enumerate(word_lists):
        assert sum(len(w.first_subwords) for w in windows if w.sentence_index == i) == len(words)
    predictions = [[label2id["B-PER"]] * len(f["input_ids"]) for f in features]
    tags = word_predictions(windows, predictions, sentences, dict(enumerate(LABELS)))
    assert [len(t) for t in tags] == [len(w) for w in word_lists] and all("O" not in t for t in tags)
    assert stats.words == sum(len(w) for w in word_lists)
