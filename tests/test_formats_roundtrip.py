"""Exact round trips between the formats: file bytes for words, spans for text (hypothesis for both)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fixtures import SAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerfocal.conll import read_conll, write_conll
from nerfocal.formats import convert, read_sentences
from nerfocal.labels import spans_to_tags
from nerfocal.words import split_words

ROUND = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRAIN = SAMPLE / "train.conll"


@pytest.mark.parametrize("via", ["export.json", "export.doccano.jsonl", "data.jsonl", "ds"])
def test_conll_via_another_format_gives_the_same_bytes(tmp_path: Path, via: str) -> None:
    stats = convert(TRAIN, tmp_path / via)
    back = convert(tmp_path / via, tmp_path / "back.conll")
    assert (tmp_path / "back.conll").read_bytes() == TRAIN.read_bytes()
    assert stats.entities_in == stats.entities_out == back.entities_out > 1000
    assert back.documents == 1200 and back.problems == []


def test_conll_via_label_studio_without_stored_tokens_gives_the_same_bytes(tmp_path: Path) -> None:
    """Without ``data.tokens`` the text is split with the predict word pattern: the same words, except
    where the pattern splits a token ("2.5" is three words)."""
    sentences = list(read_conll(TRAIN))
    plain = [s for s in sentences if split_words(" ".join(s.tokens))[0] == s.tokens]
    assert 1000 < len(plain) < len(sentences)  # a few sentences have "2.5"
    src = tmp_path / "plain.conll"
    write_conll(src, [(s.tokens, s.tags or []) for s in plain] + [(["rose", "2.5"], ["O", "B-NUM"])])
    convert(src, tmp_path / "e.json")
    tasks = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    for task in tasks:
        del task["data"]["tokens"]
    (tmp_path / "e.json").write_text(json.dumps(tasks), encoding="utf-8")
    convert(tmp_path / "e.json", tmp_path / "back.conll")
    lines = src.read_text(encoding="utf-8").splitlines()
    expected = [*lines[:-2], "2 B-NUM", ". I-NUM", "5 I-NUM", ""]
    assert (tmp_path / "back.conll").read_text(encoding="utf-8").splitlines() == expected


@pytest.mark.parametrize("scheme", ["IOB1", "BIOES"])
def test_the_tag_scheme_is_kept_or_chosen(tmp_path: Path, scheme: str) -> None:
    src = tmp_path / "src.conll"
    tokens, spans = ["a", "b", "c", "d"], [("X", 0, 1), ("X", 1, 3)]
    write_conll(src, [(tokens, spans_to_tags(spans, 4, scheme))])
    convert(src, tmp_path / "copy.conll")  # auto keeps the input's scheme
    assert (tmp_path / "copy.conll").read_bytes() == src.read_bytes()
    convert(src, tmp_path / "e.json")
    convert(tmp_path / "e.json", tmp_path / "back.conll", tag_scheme=scheme)
    assert (tmp_path / "back.conll").read_bytes() == src.read_bytes()


# words of a small alphabet with non-ASCII letters and a decomposed accent, and CJK characters, which
# the word pattern makes one word each (so a CJK character is a word of its own here: a CoNLL file
# cannot say that two words were written without a space between them)
UNITS = st.sampled_from(["a", "b", "z", "é", "e\u0301", "ß", "ж", "7"])
WORD = st.one_of(st.lists(UNITS, min_size=1, max_size=4).map("".join), st.sampled_from(["日", "東"]))
LABEL = st.sampled_from(["PER", "LOC", "ORG"])


@st.composite
def annotated_texts(draw: Any, separators: list[str]) -> tuple[str, list[tuple[int, int, str]]]:
    """A text of random words and random non-overlapping word-aligned character spans."""
    words = draw(st.lists(WORD, min_size=1, max_size=12))
    seps = draw(st.lists(st.sampled_from(separators), min_size=len(words) + 1, max_size=len(words) + 1))
    text, offsets = seps[0], []
    for word, sep in zip(words, seps[1:], strict=True):
        offsets.append((len(text), len(text) + len(word)))
        text += word + sep
    spans, i = [], 0
    while i < len(words):
        length = draw(st.integers(0, 3))
        if length and i + length <= len(words) and draw(st.booleans()):
            spans.append((offsets[i][0], offsets[i + length - 1][1], draw(LABEL)))
            i += length
        else:
            i += 1
    return text, spans


def _export(path: Path, items: list[tuple[str, list[tuple[int, int, str]]]]) -> None:
    tasks = []
    for number, (text, spans) in enumerate(items, start=1):
        result = [
            {
                "id": f"r{j}",
                "type": "labels",
                "value": {"start": s, "end": e, "text": text[s:e], "labels": [lb]},
            }
            for j, (s, e, lb) in enumerate(spans)
        ]
        tasks.append(
            {"id": number, "data": {"text": text}, "annotations": [{"id": number, "result": result}]}
        )
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")


def _spans(path: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    out = []
    for task in json.loads(path.read_text(encoding="utf-8")):
        values = [r["value"] for r in task["annotations"][0]["result"]]
        out.append((task["data"]["text"], [(v["start"], v["end"], v["labels"][0]) for v in values]))
    return out


@ROUND
@given(st.lists(annotated_texts([" "]), min_size=1, max_size=4))
def test_label_studio_via_conll_gives_the_same_spans(items: list[Any]) -> None:
    items = [(text.strip(), [(s - 1, e - 1, lb) for s, e, lb in spans]) for text, spans in items]
    with tempfile.TemporaryDirectory() as tmp:
        src, mid, back = Path(tmp, "a.json"), Path(tmp, "a.conll"), Path(tmp, "b.json")
        _export(src, items)
        convert(src, mid)
        stats = convert(mid, back)
        assert _spans(back) == items
        assert stats.entities_out == sum(len(spans) for _, spans in items)


@ROUND
@given(st.lists(annotated_texts([" ", "  ", "\n", "\t "]), min_size=1, max_size=4))
def test_label_studio_via_conll_keeps_span_texts_whatever_the_whitespace(items: list[Any]) -> None:
    """With any whitespace between the words, each span keeps its words."""
    with tempfile.TemporaryDirectory() as tmp:
        src, mid, back = Path(tmp, "a.json"), Path(tmp, "a.conll"), Path(tmp, "b.json")
        _export(src, items)
        convert(src, mid)
        convert(mid, back)
        for (text, spans), (new_text, new_spans) in zip(items, _spans(back), strict=True):
            assert [(" ".join(text[s:e].split()), lb) for s, e, lb in spans] == [
                (new_text[s:e], lb) for s, e, lb in new_spans
            ]


@ROUND
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.text(alphabet="aZ.,-'é日", min_size=1, max_size=4),
                st.sampled_from(["O", "B-X", "I-X", "B-Y"]),
            ),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_conll_via_text_formats_gives_the_same_bytes(sentences: list[list[tuple[str, str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "s.conll")
        rows = [
            ([t for t, _ in s], spans_to_tags(_chunks([g for _, g in s]), len(s), "IOB2")) for s in sentences
        ]
        write_conll(src, rows)
        for via in ("v.json", "v.doccano.jsonl"):
            convert(src, Path(tmp, via))
            convert(Path(tmp, via), Path(tmp, "back.conll"))
            assert Path(tmp, "back.conll").read_bytes() == src.read_bytes()


def _chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    from nerfocal.labels import tags_to_spans

    return tags_to_spans(tags)


def test_spacy_docbin_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("spacy", reason="spaCy is an optional extra (pip install nerfocal[spacy])")
    convert(TRAIN, tmp_path / "t.spacy")
    convert(tmp_path / "t.spacy", tmp_path / "back.conll")
    assert (tmp_path / "back.conll").read_bytes() == TRAIN.read_bytes()
    # text with newlines and double spaces: the Doc keeps the text, the spans come back exact
    items = [
        ("Anna  Kowalska\nvisited Kraków. ", [(0, 14, "PER"), (23, 29, "LOC")]),
        ("\n日本 ok", [(1, 3, "LOC")]),
    ]
    _export(tmp_path / "a.json", items)
    convert(tmp_path / "a.json", tmp_path / "a.spacy")
    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(tmp_path / "a.spacy").get_docs(spacy.blank("xx").vocab))
    assert [d.text for d in docs] == [t for t, _ in items]
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Anna  Kowalska", "PER"), ("Kraków", "LOC")]
    convert(tmp_path / "a.spacy", tmp_path / "b.json")
    assert _spans(tmp_path / "b.json") == items


def test_hf_dataset_round_trip_uses_a_class_label(tmp_path: Path) -> None:
    import datasets

    convert(TRAIN, tmp_path / "ds")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    names = ds.features["ner_tags"].feature.names
    assert names[0] == "O" and "B-LOC" in names and ds.num_rows == 1200
    sentences, _ = read_sentences(tmp_path / "ds")
    assert sentences[0].tokens[:3] == ["The", "Film", "Days"] and sentences[0].tags[:3] == [
        "O",
        "B-EVENT",
        "I-EVENT",
    ]
    convert(TRAIN, tmp_path / "ds")  # overwriting a dataset folder replaces it whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_missing_spacy_gives_a_one_line_error_naming_the_extra(tmp_path: Path, monkeypatch: Any) -> None:
    import builtins

    real_import = builtins.__import__

    def no_spacy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "spacy" or name.startswith("spacy."):
            raise ImportError("No module named 'spacy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spacy)
    with pytest.raises(ImportError, match=r"needs spaCy: pip install nerfocal\[spacy\]"):
        convert(TRAIN, tmp_path / "t.spacy")
    assert not (tmp_path / "t.spacy").exists()


def test_documents_survive_conll_to_jsonl_and_back(tmp_path: Path) -> None:
    """-DOCSTART- documents become JSONL document_ids and -DOCSTART- lines again: nothing of the
    document structure (what document context reads) is lost by a conversion."""
    source = tmp_path / "docs.conll"
    source.write_text(
        "-DOCSTART- O\n\nAnna B-PER\nsaid O\n\nRome B-LOC\n\n-DOCSTART- O\n\nOslo B-LOC\n\n", encoding="utf-8"
    )
    convert(source, tmp_path / "docs.jsonl")
    records = [json.loads(line) for line in (tmp_path / "docs.jsonl").read_text().splitlines()]
    assert [r["document_id"] for r in records] == ["1", "1", "2"]
    convert(tmp_path / "docs.jsonl", tmp_path / "back.conll")
    assert (tmp_path / "back.conll").read_text() == source.read_text()
    convert(source, tmp_path / "ds")  # a dataset saved to disk: a document_id column
    convert(tmp_path / "ds", tmp_path / "from_ds.conll")
    assert (tmp_path / "from_ds.conll").read_text() == source.read_text()
    convert(source, tmp_path / "copy.conll")
    assert [s.document for s in read_conll(tmp_path / "copy.conll")] == ["1", "1", "2"]
    convert(TRAIN, tmp_path / "one.conll")  # one document (no marker): no marker written
    assert "-DOCSTART-" not in (tmp_path / "one.conll").read_text()
