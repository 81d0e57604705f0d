"""BILOU tags, duplicate YAML keys, and the default word pattern on CJK text and emoji sequences.

See docs/robustness.md (cases 49, 51 and 53) and docs/predict.md (word-splitting rule).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fixtures import BIOES_LABELS, save_tiny_model

from nerfocal.cli import main as cli_main
from nerfocal.config import DataConfig, parse_config
from nerfocal.data import load_ner_data
from nerfocal.labels import convert_tags, count_repairs, detect_scheme, split_tag, tags_to_spans
from nerfocal.words import split_words

BILOU = ["U-PER", "O", "B-LOC", "I-LOC", "L-LOC", "O", "B-ORG", "L-ORG"]
WORDS = ["Anna", "in", "New", "South", "Wales", ",", "Acme", "Corp"]
BILOU_FILE = "".join(f"{w} {t}\n" for w, t in zip(WORDS, BILOU, strict=True))


# --- BILOU ----------------------------------------------------------------------------------------


def test_bilou_tags_read_as_bioes_with_l_as_e_and_u_as_s() -> None:
    assert split_tag("L-LOC") == ("E", "LOC") and split_tag("U-PER") == ("S", "PER")
    assert tags_to_spans(BILOU) == [("PER", 0, 1), ("LOC", 2, 5), ("ORG", 6, 8)]
    assert detect_scheme([BILOU]) == "BIOES"
    assert count_repairs(BILOU, "BILOU") == 0 and count_repairs(BILOU, "BIOES") == 0
    assert convert_tags(BILOU, "BILOU", "BIOES") == [t.replace("L-", "E-").replace("U-", "S-") for t in BILOU]
    assert convert_tags(BILOU, "BILOU", "IOB2")[:2] == ["B-PER", "O"]
    with pytest.raises(ValueError, match=r"expected IOB2 tags .*'U-PER'"):
        convert_tags(BILOU, "IOB2", "IOB2")
    with pytest.raises(ValueError, match=re.escape("<B|I|E|S|L|U>")):
        split_tag("X-LOC")


@pytest.mark.parametrize("tag_scheme", ["BILOU", "auto"])
@pytest.mark.parametrize("label_scheme", ["BIOES", "IOB2"])
def test_a_bilou_training_file_loads_with_its_chunks(
    tag_scheme: str, label_scheme: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "train.bilou"
    path.write_text(BILOU_FILE, encoding="utf-8")
    cfg = DataConfig(train_file=str(path), tag_scheme=tag_scheme, label_scheme=label_scheme)
    data = load_ner_data(cfg)
    tags = data.sentences["train"][0].tags or []
    assert tags_to_spans(tags) == tags_to_spans(BILOU)
    assert not any(t[0] in "LU" for t in tags)
    assert data.sentences["train"][0].extra["repaired_tags"] == 0  # L-/U- are not repairs
    assert "not valid" not in caplog.text


def test_evaluate_scores_bilou_gold_against_a_bioes_model(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "model", BIOES_LABELS, max_length=24, scheme="BIOES")
    gold = tmp_path / "gold.conll"
    gold.write_text(BILOU_FILE.replace("ORG", "PER"), encoding="utf-8")
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--model", str(model), "--data", str(gold), "--output", str(out), "--quiet"]
    assert cli_main(argv) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["gold_scheme"] == "BIOES"


# --- duplicate YAML keys --------------------------------------------------------------------------


def test_a_duplicate_yaml_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("gamma: 2.0\nmax_length: 64\n\ngamma: 1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.yaml:1 and 4: duplicate key 'gamma'"):
        parse_config([str(path)])
    path.write_text("alpha:\n  O: 0.2\n  B-PER: 1.0\n  O: 0.3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.yaml:2 and 4: duplicate key 'O'"):
        parse_config([str(path)])
    path.write_text("gamma: 2.0\nalpha: {O: 0.2}\nmax_length: 64\n", encoding="utf-8")
    assert parse_config([str(path)])[2].alpha == {"O": 0.2}  # the same key in two mappings is fine


# --- words of CJK text and emoji ------------------------------------------------------------------


def _words(text: str) -> list[str]:
    words, offsets = split_words(text)
    assert [text[a:b] for a, b in offsets] == words
    return words


def test_chinese_and_japanese_characters_are_one_word_each() -> None:
    assert _words("我爱北京天安门。") == ["我", "爱", "北", "京", "天", "安", "门", "。"]
    assert _words("東京都に行った") == ["東", "京", "都", "に", "行", "っ", "た"]
    assert _words("トヨタ自動車、ソニー") == ["ト", "ヨ", "タ", "自", "動", "車", "、", "ソ", "ニ", "ー"]
    assert _words("ｶﾞｽ") == ["ｶ", "ﾞ", "ｽ"]  # half-width katakana; the voiced mark is its own letter
    assert _words("か\u3099") == ["か\u3099"]  # a combining voiced mark stays on its kana
    assert _words("Sony在東京2024年") == ["Sony", "在", "東", "京", "2024", "年"]
    assert _words("서울에 갔다") == ["서울에", "갔다"]  # Korean separates words with spaces


def test_emoji_sequences_stay_one_word_and_no_joiner_stands_alone() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    waving = "\U0001f44b\U0001f3fd"  # skin tone modifier
    heart = "\u2764\ufe0f"  # variation selector
    flag = "\U0001f1eb\U0001f1f7"  # regional indicators F R
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # tag sequence
    text = f"{family} hi{waving}! {heart}{flag} {scotland} a \u200d b\u200c"
    assert _words(text) == [family, "hi", waving, "!", heart, flag, scotland, "a", "b\u200c"]
    assert "\u200d" not in _words("\u200d \u200c\u200d x\u200d\u200dy")


def test_words_keep_accents_hyphens_and_joiners_inside_scripts_with_spaces() -> None:
    assert _words("Zoë cafe\u0301 New-York-based हिन्दी क्\u200dष") == [
        "Zoë",
        "cafe\u0301",
        "New-York-based",
        "हिन्दी",
        "क्\u200dष",
    ]
