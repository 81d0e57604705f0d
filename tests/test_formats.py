"""Annotation-tool formats: a realistic Label Studio export, bad inputs, sniffing, alignment rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nerfocal.conll import read_conll
from nerfocal.formats import (
    CharDocument,
    ConvertStats,
    convert,
    doc_to_sentence,
    read_sentences,
    sniff_format,
)


def _result(start: int, end: int, text: str, label: str, rid: str = "r") -> dict[str, Any]:
    value = {"start": start, "end": end, "text": text[start:end], "labels": [label]}
    return {"id": rid, "type": "labels", "from_name": "label", "to_name": "text", "value": value}


def _annotation(
    aid: int, who: Any, spans: list[tuple[int, int, str]], text: str, cancelled: bool = False
) -> dict:
    result = [_result(s, e, text, label, f"r{aid}{i}") for i, (s, e, label) in enumerate(spans)]
    return {"id": aid, "completed_by": who, "was_cancelled": cancelled, "lead_time": 3.2, "result": result}


T1 = "Anna Kowalska visited Kraków."
T2 = "The Vistula flows north."
T3 = "Nobody labelled this one."
T4 = "New York City Hall opened."
T5 = "🙂 Paris is nice"


def label_studio_export(tmp_path: Path) -> Path:
    """An export as Label Studio writes it: several annotators, a cancelled annotation, predictions,
    an unannotated task, a span cut inside a word, overlapping spans, UTF-16 offsets after an emoji."""
    emoji_span = _result(3, 8, "x" * 10, "LOC")  # JS counts the emoji as two code units
    emoji_span["value"]["text"] = "Paris"
    tasks = [
        {
            "id": 101,
            "data": {"text": T1},
            "annotations": [
                _annotation(1, 1, [(0, 4, "PER")], T1, cancelled=True),
                _annotation(2, 2, [(0, 13, "PER"), (22, 28, "LOC")], T1),
                _annotation(3, {"id": 3, "email": "c@example.org"}, [(22, 28, "LOC")], T1),
            ],
            "predictions": [{"model_version": "m1", "result": [_result(0, 4, T1, "PER")]}],
        },
        {"id": 102, "data": {"text": T2}, "annotations": [_annotation(4, 2, [(4, 10, "LOC")], T2)]},
        {
            "id": 103,
            "data": {"text": T3},
            "annotations": [],
            "predictions": [{"result": [_result(0, 6, T3, "PER")]}],
        },
        {
            "id": 104,
            "data": {"text": T4},
            "annotations": [_annotation(5, 2, [(0, 13, "LOC"), (9, 18, "ORG")], T4)],
        },
        {
            "id": 105,
            "data": {"text": T5},
            "annotations": [{"id": 6, "completed_by": 2, "was_cancelled": False, "result": [emoji_span]}],
        },
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def _conll_tags(path: Path) -> list[list[tuple[str, str]]]:
    return [list(zip(s.tokens, s.tags or [], strict=True)) for s in read_conll(path)]


def test_error_policy_lists_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    src = label_studio_export(tmp_path)
    dst = tmp_path / "out.conll"
    dst.write_text("keep me\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 entity span problem") as info:
        convert(src, dst)
    message = str(info.value)
    assert (
        "export.json: task 102, annotation 4: span [4, 10) LOC 'Vistul' has an edge inside a word" in message
    )
    assert (
        "task 104, annotation 5: span [9, 18) ORG 'City Hall' overlaps [0, 13) LOC 'New York City'" in message
    )
    assert dst.read_text(encoding="utf-8") == "keep me\n"  # nothing written, the old file intact


def test_snap_policy_moves_edges_keeps_the_longest_and_counts(tmp_path: Path) -> None:
    dst = tmp_path / "out.conll"
    stats = convert(label_studio_export(tmp_path), dst, misaligned="snap")
    assert (stats.documents, stats.entities_in, stats.entities_out) == (4, 6, 5)
    assert (stats.snapped, stats.dropped, stats.skipped) == (1, 1, 1)
    assert any("task 102" in p and "snapped to 'Vistula'" in p for p in stats.problems)
    assert any("task 104" in p and "'City Hall'" in p and "dropped" in p for p in stats.problems)
    assert any("task 103" in n and "no annotation" in n for n in stats.notes)
    sentences = _conll_tags(dst)
    assert sentences[0][:2] == [("Anna", "B-PER"), ("Kowalska", "I-PER")]  # annotator 2, not cancelled 1
    assert ("Kraków", "B-LOC") in sentences[0]
    assert sentences[1][1] == ("Vistula", "B-LOC")
    assert [t for _, t in sentences[2]] == ["B-LOC", "I-LOC", "I-LOC", "O", "O", "O"]
    assert sentences[3][1] == ("Paris", "B-LOC")  # UTF-16 offsets recognised by the quoted text
    assert "5 written" in stats.summary() and "1 snapped" in stats.summary()


def test_drop_policy_removes_misaligned_and_all_overlapping_spans(tmp_path: Path) -> None:
    sentences, stats = read_sentences(label_studio_export(tmp_path), misaligned="drop")
    assert (stats.entities_in, stats.entities_out, stats.snapped, stats.dropped) == (6, 3, 0, 3)
    assert sentences[1].tags == ["O"] * 5 and sentences[2].tags == ["O"] * 6
    assert sentences[1].extra["source"].endswith("export.json: task 102, annotation 4")
    assert len([p for p in stats.problems if p.endswith("dropped")]) == 3


def test_annotator_by_user_and_by_index(tmp_path: Path) -> None:
    src = label_studio_export(tmp_path)
    sentences, stats = read_sentences(src, annotator="c@example.org")  # the expanded completed_by
    assert len(sentences) == 1 and stats.skipped == 4
    assert sentences[0].tags == ["O", "O", "O", "B-LOC", "O"]
    by_id, _ = read_sentences(src, annotator="3")
    assert by_id[0].tags == sentences[0].tags
    _, stats = read_sentences(src, annotator=0, misaligned="snap")  # task 101's first is cancelled
    assert any("task 101" in n and "cancelled" in n for n in stats.notes)


def _write_tasks(tmp_path: Path, tasks: list[dict[str, Any]]) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def test_missing_text_key_names_file_and_task(tmp_path: Path) -> None:
    path = _write_tasks(tmp_path, [{"id": 7, "data": {"body": "a b", "title": "t"}, "annotations": []}])
    with pytest.raises(ValueError, match=r"bad\.json: task 7: expected a 'text' key"):
        read_sentences(path)
    with pytest.raises(ValueError, match=r"bad\.json: task 7: missing text key 'content'"):
        read_sentences(path, text_key="content")
    sentences, _ = read_sentences(
        _write_tasks(tmp_path, [{"id": 7, "data": {"body": "a b"}, "annotations": [{"result": []}]}])
    )
    assert sentences[0].tokens == ["a", "b"]  # the only string field is the text


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (
            {"start": 2, "end": 40, "labels": ["PER"]},
            r"task 8, annotation 1: span \[2, 40\) PER: offsets beyond",
        ),
        (
            {"start": 3, "end": 4, "labels": ["PER"]},
            r"task 8, annotation 1: span \[3, 4\) PER: .*whitespace-only",
        ),
        ({"start": 0, "end": 1, "labels": ["A", "B"]}, r"task 8, annotation 1: result r: expected one label"),
        ({"start": "0", "end": 1, "labels": ["A"]}, r"task 8, annotation 1: expected integer"),
    ],
)
def test_bad_spans_name_file_and_task(tmp_path: Path, value: dict[str, Any], pattern: str) -> None:
    result = [{"id": "r", "type": "labels", "value": value}]
    path = _write_tasks(
        tmp_path, [{"id": 8, "data": {"text": "abc def"}, "annotations": [{"id": 1, "result": result}]}]
    )
    with pytest.raises(ValueError, match=r"bad\.json: " + pattern):
        convert(path, tmp_path / "o.conll", misaligned="snap")
    assert not (tmp_path / "o.conll").exists()


def test_unknown_result_type_is_an_error(tmp_path: Path) -> None:
    result = [{"id": "c1", "type": "choices", "value": {"choices": ["spam"]}}]
    path = _write_tasks(
        tmp_path, [{"id": 9, "data": {"text": "x"}, "annotations": [{"id": 1, "result": result}]}]
    )
    with pytest.raises(
        ValueError, match=r"bad\.json: task 9, annotation 1: result c1: unsupported result type"
    ):
        read_sentences(path)


def test_quoted_text_that_disagrees_with_the_offsets_is_a_problem(tmp_path: Path) -> None:
    result = [{"id": "r", "type": "labels", "value": {"start": 0, "end": 3, "text": "def", "labels": ["X"]}}]
    path = _write_tasks(
        tmp_path, [{"id": 3, "data": {"text": "abc def"}, "annotations": [{"result": result}]}]
    )
    with pytest.raises(
        ValueError, match=r"task 3, annotation \?: span \[0, 3\) X 'abc': the offsets do not match"
    ):
        read_sentences(path)
    sentences, stats = read_sentences(path, misaligned="drop")
    assert sentences[0].tags == ["O", "O"] and stats.dropped == 1


def test_doccano_reads_label_labels_and_entities_forms(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        {"id": 1, "text": "Anna lives here", "label": [[0, 4, "PER"]]},
        {"text": "Anna lives here", "labels": [[11, 15, "LOC"]]},
        {"text": "Anna lives", "entities": [{"id": 5, "start_offset": 5, "end_offset": 10, "label": "V"}]},
        {"text": "no entities"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert sniff_format(path) == "doccano"
    sentences, stats = read_sentences(path)
    assert [s.tags for s in sentences] == [
        ["B-PER", "O", "O"],
        ["O", "O", "B-LOC"],
        ["O", "B-V"],
        ["O", "O"],
    ]
    assert stats.entities_in == 3 and sentences[0].extra["source"] == f"{path}:1 (id 1)"
    path.write_text('{"text": "abc", "label": [[1, 9, "X"]]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.jsonl:1: span \[1, 9\) X: offsets beyond the text"):
        read_sentences(path)


def test_sniffing_by_extension_and_content(tmp_path: Path) -> None:
    nerfocal_jsonl = tmp_path / "a.jsonl"
    nerfocal_jsonl.write_text('{"tokens": ["a"], "tags": ["O"]}\n', encoding="utf-8")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("{}", encoding="utf-8")
    assert sniff_format(nerfocal_jsonl) == "jsonl"
    assert sniff_format(tmp_path / "x.iob") == sniff_format(tmp_path / "x.txt") == "conll"
    assert sniff_format(tmp_path / "x.spacy") == "docbin"
    assert sniff_format(tmp_path / "x.json") == "labelstudio"
    assert sniff_format(tmp_path / "ds") == "hf"
    assert sniff_format(tmp_path / "new_ds", writing=True) == "hf"
    assert sniff_format(tmp_path / "o.doccano.jsonl", writing=True) == "doccano"
    with pytest.raises(ValueError, match=r"x\.csv: cannot tell the format"):
        sniff_format(tmp_path / "x.csv")


def test_convert_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    src = label_studio_export(tmp_path)
    with pytest.raises(ValueError, match="expected an output different from the input"):
        convert(src, tmp_path / "." / "export.json", misaligned="snap")
    with pytest.raises(ValueError, match="misaligned: expected one of error, snap, drop"):
        convert(src, tmp_path / "o.conll", misaligned="fix")


def test_whitespace_at_span_edges_is_not_a_problem_and_a_custom_pattern_is_used() -> None:
    doc = CharDocument("Hello  big world", [(6, 16, "X"), (0, 6, "G")], "mem: doc")
    stats = ConvertStats()
    s = doc_to_sentence(doc, stats=stats)
    assert s.tags == ["B-G", "B-X", "I-X"] and stats.problems == []
    # with a pattern of letter pairs, "big" is "bi" + "g": a span on "b" has an edge inside a word
    doc = CharDocument("big", [(0, 1, "X")], "mem: doc")
    with pytest.raises(ValueError, match=r"mem: doc: span \[0, 1\) X 'b' has an edge inside a word \('bi'\)"):
        read_stats = ConvertStats()
        doc_to_sentence(doc, stats=read_stats, split_pattern=r"\w\w?")
        read_stats.raise_problems()


def test_duplicate_spans_are_merged_and_counted() -> None:
    stats = ConvertStats()
    s = doc_to_sentence(CharDocument("a b", [(0, 1, "X"), (0, 1, "X")], "m"), stats=stats)
    assert s.tags == ["B-X", "O"] and stats.duplicates == 1 and stats.problems == []


def test_a_conll_token_with_whitespace_cannot_be_written(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"tokens": ["New York"], "tags": ["B-LOC"]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"the token 'New York' is empty or holds whitespace"):
        convert(src, tmp_path / "a.conll")
    assert not (tmp_path / "a.conll").exists()


def test_the_examples_in_docs_formats_md_are_true(tmp_path: Path) -> None:
    from fixtures import ROOT

    doc = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    (tmp_path / "ls.json").write_text(next(b for b in blocks if '"annotations"' in b), encoding="utf-8")
    (tmp_path / "d.jsonl").write_text(next(b for b in blocks if '"label": [[' in b), encoding="utf-8")
    (tmp_path / "n.jsonl").write_text(next(b for b in blocks if '"tokens"' in b), encoding="utf-8")
    tags = {name: read_sentences(tmp_path / name)[0][0].tags for name in ("ls.json", "d.jsonl", "n.jsonl")}
    assert tags == {
        "ls.json": ["B-PER", "I-PER", "O", "O", "O"],
        "d.jsonl": ["B-PER", "I-PER", "O", "B-LOC", "O"],
        "n.jsonl": ["B-PER", "I-PER", "O", "B-LOC", "O"],
    }
    stats = convert(label_studio_export(tmp_path), tmp_path / "o.conll", misaligned="snap")
    assert f"`{stats.summary()}`" in doc
    snapped = next(p for p in stats.problems if "snapped" in p)
    assert f"`{snapped.split('/')[-1]}`" in doc  # the message quoted in the docs, from export.json on
