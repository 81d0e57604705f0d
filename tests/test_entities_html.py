"""Entity highlighting in HTML (nerfocal.entities_html): escaping, offsets, colours, overlaps."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from nerfocal.entities_html import (
    PALETTE,
    colour,
    render_entities,
    render_page,
    render_record,
    side_by_side,
)
from nerfocal.words import Document, Prediction


class Tree(HTMLParser):
    """Checks that every element is closed in order; collects each <mark>'s attributes."""

    VOID = frozenset({"meta", "br"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.marks: list[dict[str, str]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag == "mark":
            self.marks.append({k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "script" in self.stack:
            self.errors.append("a script element")


def parse(fragment: str) -> Tree:
    tree = Tree()
    tree.feed(fragment)
    tree.close()
    assert not tree.errors and not tree.stack, (tree.errors, tree.stack)
    return tree


def visible_text(fragment: str) -> str:
    no_tags = re.sub(r'<span class="nf-tag">.*?</span>', "", fragment)
    return html.unescape(re.sub(r"<[^>]+>", "", no_tags))


def test_text_is_escaped_and_no_markup_leaks() -> None:
    text = 'Bob <script>alert("x")</script> & "Paris"'
    start = text.index("<script>")
    ents = [{"label": "ORG<b>", "start": start, "end": start + 8, "text": "<script>", "score": 0.5}]
    out = render_entities(text, ents)
    assert "<script>" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "ORG&lt;b&gt;" in out
    parse(out)
    assert visible_text(out) == text


def test_character_offsets_are_exact() -> None:
    text = "Angela Merkel visited Paris."
    prediction = Prediction(Document.from_text(text), ["B-PER", "I-PER", "O", "B-LOC", "O"], [0.9] * 5)
    out = render_entities(text, prediction.entities)
    tree = parse(out)
    pieces = re.findall(r'<span class="nf-text">(.*?)</span>', out)
    assert pieces == ["Angela Merkel", "Paris"]
    assert [(m["data-label"], m["data-start"], m["data-end"]) for m in tree.marks] == [
        ("PER", "0", "13"),
        ("LOC", "22", "27"),
    ]
    assert tree.marks[0]["title"] == "PER · score 0.900"
    assert visible_text(out) == text


def test_token_indices_select_whole_tokens() -> None:
    tokens = ["New", "York", "is", "big"]
    out = render_entities(tokens, [{"label": "LOC", "start": 0, "end": 2, "text": "New York"}])
    assert re.findall(r'<span class="nf-text">(.*?)</span>', out) == ["New York"]
    assert parse(out).marks[0]["data-end"] == "2"
    assert visible_text(out) == "New York is big"


def test_bad_offsets_or_text_are_one_line_errors_naming_the_entity() -> None:
    with pytest.raises(ValueError, match=r"entity 1: expected 0 <= start < end <= 4 \(tokens\), got 3\.\.5"):
        render_entities(
            ["a", "b", "c", "d"], [{"label": "X", "start": 0, "end": 1}, {"label": "X", "start": 3, "end": 5}]
        )
    with pytest.raises(ValueError, match="entity 0: expected text 'abc'"):
        render_entities("abc def", [{"label": "X", "start": 0, "end": 3, "text": "abd"}])
    with pytest.raises(ValueError, match=r"out\.jsonl:3: expected a 'text' or 'tokens'"):
        render_record({"entities": []}, "out.jsonl:3")


def test_colours_are_stable_per_label_and_distinct_for_conll_types() -> None:
    assert colour("PER") == colour("PER")
    assert len({colour(t) for t in ("PER", "ORG", "LOC", "MISC")}) == 4
    assert colour("DISEASE") in PALETTE
    # CRC32, not hash(): fixed across processes (pinned so a change of scheme is noticed)
    assert colour("DISEASE") == PALETTE[__import__("zlib").crc32(b"DISEASE") % len(PALETTE)]
    out = render_entities(
        "a b", [{"label": "PER", "start": 0, "end": 1}, {"label": "PER", "start": 2, "end": 3}]
    )
    assert len(set(re.findall(r"--nf-colour: (#\w+)", out))) == 1


def test_overlapping_and_nested_entities_keep_markup_well_formed() -> None:
    text = "University of Paris Hospital"
    ents = [
        {"label": "ORG", "start": 0, "end": 19},  # University of Paris
        {"label": "LOC", "start": 14, "end": 28},  # Paris Hospital (crosses ORG's end)
        {"label": "LOC", "start": 14, "end": 19},  # Paris (nested)
    ]
    out = render_entities(text, ents)
    tree = parse(out)
    assert visible_text(out) == text
    spans = {(m["data-label"], m["data-start"], m["data-end"]) for m in tree.marks}
    assert spans == {("ORG", "0", "19"), ("LOC", "14", "28"), ("LOC", "14", "19")}
    assert out.count('<span class="nf-tag">') == 3  # one label tag per entity


def test_gold_is_drawn_and_wrong_predictions_are_marked() -> None:
    tokens = ["Ann", "lives", "in", "Rome"]
    gold = [{"label": "PER", "start": 0, "end": 1}, {"label": "LOC", "start": 3, "end": 4}]
    pred = [{"label": "PER", "start": 0, "end": 1}, {"label": "ORG", "start": 3, "end": 4}]
    marks = parse(render_entities(tokens, pred, gold=gold)).marks
    wrong = [(m["data-label"], "nf-wrong" in m["class"]) for m in marks if "nf-pred" in m["class"]]
    assert wrong == [("PER", False), ("ORG", True)]
    assert sum("nf-gold" in m["class"] for m in marks) == 2


def test_side_by_side_shows_gold_and_predicted_rows() -> None:
    tokens = ["Ann", "lives", "in", "Rome"]
    out = side_by_side(
        tokens, [{"label": "LOC", "start": 3, "end": 4}], [{"label": "PER", "start": 0, "end": 1}]
    )
    parse(out)
    gold_row, pred_row = out.split('<span class="nf-row-name">predicted</span>')
    assert 'data-label="LOC"' in gold_row and 'data-label="PER"' not in gold_row
    assert 'data-label="PER"' in pred_row and "nf-wrong" in pred_row and "nf-gold" not in pred_row


def test_records_from_predict_and_from_run_predictions_render() -> None:
    conll = {"tokens": ["Ann", "sings"], "tags": ["B-PER", "O"], "entities": []}
    assert "nf-gold" in render_record(conll)  # gold from the CoNLL input's tags
    both = {
        "text": "Ann  sings",
        "tokens": ["Ann", "sings"],
        "entities": [{"label": "PER", "start": 0, "end": 1}],
    }
    assert parse(render_record(both)).marks[0]["data-end"] == "1"  # token indices, as predict used
    run = {"tokens": ["Ann", "sings"], "gold": ["B-PER", "O"], "pred": ["B-PER", "O"]}
    marks = parse(render_record(run)).marks
    assert [("nf-wrong" in m["class"], m["data-label"]) for m in marks if "nf-pred" in m["class"]] == [
        (False, "PER")
    ]


def test_page_is_self_contained() -> None:
    page = render_page(
        [{"text": "Ann met Bob.", "entities": [{"label": "PER", "start": 0, "end": 3}]}, "<p>raw</p>"],
        "Entities <of> test",
    )
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<title>Entities &lt;of&gt; test</title>" in page
    assert not re.search(r"https?://|\bsrc=|\bhref=|@import|url\(", page)
    parse(page)
