"""Tag schemes, spans and the label order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerfocal.labels import (
    build_label_list,
    convert_tags,
    count_invalid_iob2,
    detect_scheme,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)


def test_iob1_to_iob2_starts_every_chunk_with_b() -> None:
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "B-ORG"]
    assert convert_tags(iob1, "IOB1", "IOB2") == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-ORG"]


def test_iob2_to_iob1_uses_b_only_between_adjacent_chunks_of_one_type() -> None:
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert convert_tags(iob2, "IOB2", "IOB1") == ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]


def test_bioes_marks_single_and_end_tokens() -> None:
    iob2 = ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]
    assert convert_tags(iob2, "IOB2", "BIOES") == ["B-PER", "I-PER", "E-PER", "O", "S-LOC"]


def test_spans_follow_the_conlleval_chunk_rule() -> None:
    assert tags_to_spans(["O", "I-PER", "I-LOC", "B-LOC", "O"]) == [
        ("PER", 1, 2),
        ("LOC", 2, 3),
        ("LOC", 3, 4),
    ]
    assert tags_to_spans(["S-X", "B-Y", "E-Y", "I-Y"]) == [("X", 0, 1), ("Y", 1, 3), ("Y", 3, 4)]


def test_invalid_iob2_transitions_are_counted() -> None:
    assert count_invalid_iob2(["I-PER", "O", "B-LOC", "I-LOC", "I-ORG"]) == 2


def test_scheme_detection() -> None:
    assert detect_scheme([["I-PER", "O"]]) == "IOB1"
    assert detect_scheme([["B-PER", "I-PER"]]) == "IOB2"
    assert detect_scheme([["S-PER"]]) == "BIOES"


def test_label_order_is_stable_and_starts_with_o() -> None:
    a = build_label_list([["B-PER", "O"], ["B-LOC", "I-LOC"]])
    b = build_label_list([["B-LOC"], ["I-PER", "O"]])
    assert a == b == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.mark.parametrize("bad", ["X-PER", "B-", "PER", "b-PER", ""])
def test_malformed_tags_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a tag"):
        split_tag(bad)


def test_unknown_scheme_raises() -> None:
    with pytest.raises(ValueError, match="expected a tag scheme"):
        convert_tags(["O"], "IOBX", "IOB2")


tag_st = st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B"])


@given(st.lists(tag_st, max_size=30))
def test_round_trips_through_every_scheme_keep_the_chunks(tags: list[str]) -> None:
    iob2 = convert_tags(tags, "IOB2", "IOB2")
    spans = tags_to_spans(iob2)
    canonical = spans_to_tags(spans, len(tags), "IOB2")
    assert tags_to_spans(canonical) == spans
    for scheme in ("IOB1", "BIOES"):
        other = convert_tags(canonical, "IOB2", scheme)
        assert convert_tags(other, scheme, "IOB2") == canonical
        assert tags_to_spans(other) == spans
