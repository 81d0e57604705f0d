"""Robustness: every bad input gives a one-line error naming the file:line or the key (or a documented,
counted fix-up), faults stop cleanly, outputs are atomic and loading is safe. See docs/robustness.md.

The command lines run in-process (``nerfocal.cli.main``) on tiny models built here; no training goes
beyond one step.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures import (
    IOB2_LABELS,
    LABELS,
    SHARED_DATA,
    build_tiny_model,
    build_tokenizer,
    save_tiny_model,
)

from nerfocal.cli import main as cli_main
from nerfocal.config import DataConfig, LossConfig, ModelConfig, parse_config
from nerfocal.conll import DataFormatError, atomic_open, read_conll
from nerfocal.data import load_ner_data
from nerfocal.encode import encode_sentences, word_predictions
from nerfocal.metrics import entity_metrics
from nerfocal.predict import VITERBI_SEGMENT, Document, Predictor

L2I = {label: i for i, label in enumerate(LABELS)}
TRAIN = "Anna B-PER\nNovak I-PER\nvisited O\nLisbon B-LOC\n.\tO\n\nThe O\nUN B-ORG\nmet O\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    # tiny models and the Viterbi loop are dominated by per-op overhead, which extra threads only add to
    # (much more so on a busy machine); restored afterwards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), IOB2_LABELS, max_length=24)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``nerfocal ARGV`` in-process; returns the exit status and stderr (stdout is dropped)."""
    code = cli_main(argv)
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(err: str, command: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith(f"nerfocal {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module", autouse=True)
def _encoder_for_train_argv(tmp_path_factory: pytest.TempPathFactory) -> None:
    # train checks the model source before the data: the bad-data cases need a real (tiny) model dir
    _ENCODER.append(build_tiny_model(tmp_path_factory.mktemp("encoder"), labels=["O", "B-X"]))


_ENCODER: list[Path] = []


def train_argv(tmp_path: Path, train_file: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model_name_or_path",
        str(_ENCODER[-1]),
        "--train_file",
        str(train_file),
        "--output_dir",
        str(tmp_path / "run"),
        "--use_cpu",
        "true",
        *extra,
    ]


# --- CoNLL input ------------------------------------------------------------------------------------

BAD_TRAIN_FILES: dict[str, tuple[bytes, str]] = {
    # case: (file content, what the one-line error must contain besides the path)
    "wrong column count": (b"EU NNP B-ORG\nrejects VBZ O\nGerman JJ\n", ":3: expected 3 columns"),
    "tag column missing": (b"EU\nrejects\n", ":1: expected a tag column"),
    "not UTF-8": (b"EU B-ORG\n" * 900 + "Z\xfcrich B-LOC\n".encode("latin-1"), ":901: byte 2 of the line"),
    "empty file": (b"", "no sentences"),
    "only blank lines and DOCSTART": (b"\n\t\n-DOCSTART- O\n\r\n", "no sentences"),
    "malformed tag": (b"EU B-ORG\n\nrejects O\nGerman PER\n", ":4: expected a tag 'O' or"),
    "E- tag with tag_scheme IOB2": (b"EU B-ORG\nrejects E-ORG\n", ":2: expected IOB2 tags"),
    "no entities at all": (b"EU O\nrejects O\n\nGerman O\n", "no entity tags"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_FILES))
def test_bad_training_file_is_a_one_line_error_naming_the_file(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, needle = BAD_TRAIN_FILES[case]
    path = tmp_path / "train.conll"
    path.write_bytes(content)
    extra = ["--tag_scheme", "IOB2"] if "IOB2" in case else []
    code, err = run(train_argv(tmp_path, path, *extra), capsys)
    assert code == 2
    assert_one_line_error(err, "train", str(path), needle)
    if case == "not UTF-8":
        assert "--encoding" in err


def test_non_utf8_file_reads_with_the_encoding_option(tmp_path: Path) -> None:
    path = tmp_path / "latin.conll"
    path.write_bytes("Z\xfcrich B-LOC\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin.conll:1: .*--encoding"):
        list(read_conll(path))
    assert next(read_conll(path, encoding="latin-1")).tokens == ["Zürich"]
    _, data_cfg, _, _ = parse_config(["--train_file", str(path), "--encoding", "latin-1"])
    assert load_ner_data(data_cfg).sentences["train"][0].tokens == ["Zürich"]
    with pytest.raises(ValueError, match=r"encoding: expected a codec .* got 'klingon'"):
        parse_config(["--train_file", str(path), "--encoding", "klingon"])


def test_tabs_crlf_bom_trailing_whitespace_and_lone_tab_breaks_read_like_a_clean_file(tmp_path: Path) -> None:
    clean = tmp_path / "clean.conll"
    clean.write_text(TRAIN, encoding="utf-8")
    messy = tmp_path / "messy.conll"
    text = TRAIN.replace("\n\n", "\n\t\n").replace(" ", " \t ").replace("\n", " \r\n")
    messy.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert [(s.tokens, s.tags) for s in read_conll(messy)] == [(s.tokens, s.tags) for s in read_conll(clean)]
    # a BOM before -DOCSTART-, a tab inside the columns, a blank CRLF line and a lone-TAB break
    path = tmp_path / "x.conll"
    path.write_bytes(
        "\ufeff-DOCSTART- -X- O\r\n\r\nEU\tNNP I-ORG \r\nrejects VBZ O\r\n\t\r\nPeter NNP I-PER\r\n".encode()
    )
    sentences = list(read_conll(path))
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["I-ORG", "O"], ["I-PER"]]
    assert sentences[1].line == 6


@pytest.mark.skipif(not (SHARED_DATA / "wnut17").is_dir(), reason="../shared/data not present")
def test_wnut17_train_with_its_upstream_lone_tab_separators_reads_3394_sentences(tmp_path: Path) -> None:
    # the shared copy has the upstream's 2,394 lone-TAB separator lines normalised; put them back
    lines = (SHARED_DATA / "wnut17" / "train.txt").read_text(encoding="utf-8").split("\n")
    blanks = [i for i, line in enumerate(lines) if not line][:2394]
    for i in blanks:
        lines[i] = "\t"
    upstream = tmp_path / "wnut17train.conll"
    upstream.write_text("\n".join(lines), encoding="utf-8")
    sentences = list(read_conll(upstream))
    assert len(blanks) == 2394 and len(sentences) == 3394
    assert sentences == list(read_conll(SHARED_DATA / "wnut17" / "train.txt"))


def test_docstart_inside_a_sentence_ends_it_so_word_lines_stay_exact(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_text("EU B-ORG\n-DOCSTART- -X- O\nrejects O\nGerman BAD\n", encoding="utf-8")
    assert [s.tokens for s in read_conll(path)] == [["EU"], ["rejects", "German"]]
    with pytest.raises(ValueError, match=r"x.conll:4: expected a tag"):
        load_ner_data(DataConfig(train_file=str(path)))


def test_empty_dev_file_is_an_error_naming_its_key(tmp_path: Path) -> None:
    (tmp_path / "train.conll").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "dev.conll").write_text("\n\n", encoding="utf-8")
    cfg = DataConfig(train_file=str(tmp_path / "train.conll"), validation_file=str(tmp_path / "dev.conll"))
    with pytest.raises(ValueError, match=r"validation_file: .*dev.conll: no sentences"):
        load_ner_data(cfg)


def test_dev_file_without_entities_scores_zero_without_crashing(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "train.conll").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "dev.conll").write_text("The O\nend O\n", encoding="utf-8")
    cfg = DataConfig(train_file=str(tmp_path / "train.conll"), validation_file=str(tmp_path / "dev.conll"))
    dev = load_ner_data(cfg).sentences["validation"]
    metrics = entity_metrics([s.tags or [] for s in dev], [["O", "O"]])
    assert metrics["f1"] == 0.0 and metrics["per_type"] == {}
    # evaluate: a file without entities, and a model that predicts none there or some
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--model", str(model_dir), "--data", str(tmp_path / "dev.conll")]
    assert cli_main([*argv, "--output", str(out), "--device", "cpu", "--quiet"]) == 0
    assert json.loads(out.read_text())["f1"] == 0.0


def test_evaluate_bad_files_are_one_line_errors(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "empty.conll": (b"", "no labelled sentences"),
        "unlabelled.conll": (b"EU\nrejects\n", ":1: expected a tag column"),
        "badtag.conll": (b"EU B-ORG\nrejects OUT\n", ":2: expected a tag 'O' or"),
        "binary.conll": (b"EU B-ORG\n" + bytes(range(0x80, 0x100)) * 4, ":2: byte 1 of the line"),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        argv = ["evaluate", "--model", str(model_dir), "--data", str(path), "--quiet"]
        code, err = run([*argv, "--output", str(tmp_path / "eval.json")], capsys)
        assert code == 2
        assert_one_line_error(err, "evaluate", str(path), needle)
    assert not (tmp_path / "eval.json").exists()


# --- tags ---------------------------------------------------------------------------------------------


def test_invalid_iob2_transitions_are_repaired_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # mostly IOB2 (chunks start with B-), with two I-X after O: repaired to B-X, not read as IOB1
    text = "Anna B-PER\nNovak I-PER\nin O\nLisbon I-LOC\n\nThe O\nUN I-ORG\nand O\nEU B-ORG\n\nBob B-PER\n"
    (tmp_path / "train.conll").write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nerfocal.data"):
        data = load_ner_data(DataConfig(train_file=str(tmp_path / "train.conll")))
    train = data.sentences["train"]
    assert train[0].tags == ["B-PER", "I-PER", "O", "B-LOC"]
    assert train[1].tags == ["O", "B-ORG", "O", "B-ORG"]
    assert [s.extra["repaired_tags"] for s in train] == [1, 1, 0]
    assert re.search(r"train: 2 tag\(s\) in 2 sentence\(s\) are not valid IOB2 .*train.conll:1", caplog.text)
    _, _, stats = encode_sentences(train, build_tokenizer(), data.label2id, max_length=32)
    assert stats.repaired_tags == 2 and stats.as_dict()["repaired_tags"] == 2  # saved in eval_results.json


def test_iob1_data_is_detected_and_converted_not_reported_as_repairs(tmp_path: Path) -> None:
    (tmp_path / "train.conll").write_text("EU I-ORG\nrejects O\nGerman I-MISC\n", encoding="utf-8")
    data = load_ner_data(DataConfig(train_file=str(tmp_path / "train.conll")))
    assert data.sentences["train"][0].tags == ["B-ORG", "O", "B-MISC"]
    assert data.sentences["train"][0].extra["repaired_tags"] == 0


def test_unseen_dev_labels_are_an_error_listing_the_known_ones_or_counted_when_mapped_to_o(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "train.conll").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "dev.conll").write_text("Lisbon B-LOC\nand O\nRome B-CITY\n\nIn O\nRome B-CITY\n")
    cfg = DataConfig(train_file=str(tmp_path / "train.conll"), validation_file=str(tmp_path / "dev.conll"))
    known = "known labels: O, B-LOC, I-LOC, B-ORG, I-ORG, B-PER, I-PER"
    with pytest.raises(ValueError, match=rf"dev.conll:3: label 'B-CITY' never occurs .* {known}"):
        load_ner_data(cfg)
    cfg.unknown_labels = "O"
    with caplog.at_level(logging.WARNING, logger="nerfocal.data"):
        data = load_ner_data(cfg)
    assert "validation: 2 tag(s) never seen in training mapped to O (unknown_labels: O): B-CITY x2" in (
        caplog.text
    )
    assert data.sentences["validation"][0].tags == ["B-LOC", "O", "O"]
    _, _, stats = encode_sentences(data.sentences["validation"], build_tokenizer(), data.label2id)
    assert stats.unknown_labels == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tag_scheme", "IOBX"], "tag_scheme: expected one of auto, IOB1, IOB2, BIOES, got 'IOBX'"),
        (["--label_scheme", "IOB1"], "label_scheme: expected one of IOB2, BIOES, got 'IOB1'"),
        (["--unknown_labels", "drop"], "unknown_labels: expected one of error, O, got 'drop'"),
        (["--long_sentences", "drop"], "long_sentences: expected one of split, truncate, got 'drop'"),
    ],
)
def test_unknown_tag_scheme_and_options_name_the_key(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_config(argv)


def _train_one_step(tmp_path: Path, encoder: Path, *extra: str) -> list[str]:
    path = tmp_path / "train.conll"
    path.write_text(TRAIN, encoding="utf-8")
    argv = train_argv(tmp_path, path, "--max_steps", "1", "--disable_tqdm", "true", *extra)
    argv[2] = str(encoder)
    return argv


@pytest.mark.parametrize(
    ("alpha", "needle"),
    [
        ('{"O": 0.5, "B-CITY": 2}', "expected alpha keys among the labels"),
        ("[0.5, 0.5]", "expected 7 alpha weights, one per label"),
    ],
)
def test_alpha_for_labels_training_never_saw_is_a_one_line_error_listing_them(
    alpha: str, needle: str, tmp_path: Path, tiny_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(_train_one_step(tmp_path, tiny_encoder_dir, "--alpha", alpha), capsys)
    assert code == 2
    assert_one_line_error(err, "train", needle, "'B-LOC'", "'I-PER'")


# --- words with no sub-word ---------------------------------------------------------------------------

INVISIBLE = ["\u200b", "\ufeff", "\x07", "\u200b\ufeff"]


def test_words_with_no_subword_keep_every_sentence_aligned_in_evaluation() -> None:
    tokenizer = build_tokenizer()
    sentences = [
        _sentence(["Anna", *INVISIBLE, "Novak"], ["B-PER", "O", "O", "O", "O", "B-PER"]),
        _sentence(["\u200b"], ["O"]),
        _sentence(["Lis\u200bbon", "Dubbz\ufeff", "x\x00y"], ["B-LOC", "B-PER", "O"]),
    ]
    features, windows, stats = encode_sentences(sentences, tokenizer, L2I, max_length=32)
    assert stats.empty_words == 5
    assert [len(w.first_subwords) for w in windows] == [6, 1, 3]
    preds = [[L2I["B-PER"]] * len(f["input_ids"]) for f in features]
    tags = word_predictions(windows, preds, sentences, dict(enumerate(LABELS)))
    assert [len(t) for t in tags] == [6, 1, 3]
    entity_metrics([s.tags or [] for s in sentences], tags)  # would raise on a length mismatch


def _sentence(tokens: list[str], tags: list[str]) -> Any:
    from nerfocal.conll import Sentence

    return Sentence(tokens, tags)


def test_evaluate_and_predict_give_every_invisible_word_a_tag(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gold.conll"
    rows = [("Angela", "B-PER"), *((w, "O") for w in INVISIBLE), ("Paris", "B-LOC")]
    path.write_text("".join(f"{w} {t}\n" for w, t in rows) + "\n\u200b O\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    assert cli_main(["evaluate", "--model", str(model_dir), "--data", str(path), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["n_sentences"] == 2
    pred = tmp_path / "pred.conll"
    argv = ["predict", "--model", str(model_dir), "--input", str(path), "--input-format", "conll"]
    assert cli_main([*argv, "--output-format", "conll", "--output", str(pred), "--quiet"]) == 0
    blocks = pred.read_text(encoding="utf-8").strip("\n").split("\n\n")
    assert [len(b.splitlines()) for b in blocks] == [6, 1]


# --- predict: odd input -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "conll", "jsonl"])
def test_binary_garbage_is_a_one_line_error_naming_the_line(
    fmt: str, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import random

    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input-format", fmt, "--output", str(out), "--quiet"]
    garbage = {
        "located": (b'{"text": "fine"}\n' * 3 + bytes(range(0x80, 0x100)) + b"\n", ":4: byte 1 of the line"),
        "random": (random.Random(0).randbytes(20_000), ":"),
    }
    for name, (content, needle) in garbage.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content)
        code, err = run([*argv, "--input", str(path)], capsys)
        assert code == 2
        assert_one_line_error(err, "predict", f"{path}{needle}", "--encoding")
        assert not out.exists()


def test_control_characters_and_nul_bytes_are_text_and_get_predictions(
    tmp_path: Path, model_dir: Path
) -> None:
    path = tmp_path / "controls.txt"
    path.write_text("\x00\x01 Paris \x1b[31m red \x7f\x07\n\x00\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(path), "--word-tags"]
    assert cli_main([*argv, "--output", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2 and all(len(r["pred_tags"]) == len(r["words"]) for r in records)


def _long_line(n_bytes: int) -> str:
    words = "Angela Merkel visited Paris in June with the European Union delegation . "
    return (words * (n_bytes // len(words) + 1))[:n_bytes]


def test_long_single_line_is_one_record_with_one_tag_per_word(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text(_long_line(200_000) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(path), "--word-tags", "--device", "cpu"]
    assert cli_main([*argv, "--output", str(out), "--quiet"]) == 0
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(record["pred_tags"]) == len(record["words"]) > 10 * VITERBI_SEGMENT
    for entity in record["entities"][:50]:
        assert record["text"][entity["start"] : entity["end"]] == entity["text"]


@pytest.mark.slow
def test_ten_megabyte_single_line(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text(_long_line(10_000_000) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(path), "--device", "cpu", "--quiet"]
    assert cli_main([*argv, "--output", str(out)]) == 0
    with out.open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 1


def test_segmented_viterbi_equals_whole_document_viterbi_and_is_valid(model_dir: Path) -> None:
    from nerfocal.decode import viterbi_decode
    from nerfocal.labels import count_invalid_iob2

    predictor = Predictor.from_pretrained(model_dir, device="cpu")
    generator = torch.Generator().manual_seed(0)
    for n in (VITERBI_SEGMENT + 1, 3 * VITERBI_SEGMENT + 17):
        log_probs = torch.log_softmax(2 * torch.randn(n, len(IOB2_LABELS), generator=generator), -1)
        segmented = predictor._viterbi_segments(log_probs)
        whole = viterbi_decode(log_probs[None], torch.tensor([n]), predictor.constraints)[0]
        assert torch.equal(segmented, whole)
        assert count_invalid_iob2([IOB2_LABELS[i] for i in segmented.tolist()]) == 0
    words = ["Angela", "Merkel", "visited", "Paris", "."] * 300
    whole_doc = predictor.predict_chunk([Document(words)])[0]
    assert len(whole_doc.tags) == len(words) and count_invalid_iob2(whole_doc.tags) == 0


def test_missing_and_broken_model_directories_are_one_line_cli_errors(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Paris\n", encoding="utf-8")
    no_labels = tmp_path / "no-labels"
    no_labels.mkdir()
    for f in model_dir.iterdir():
        (no_labels / f.name).write_bytes(f.read_bytes())
    config = json.loads((no_labels / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(len(config["id2label"]))}
    config.pop("label2id")
    (no_labels / "config.json").write_text(json.dumps(config))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    for directory, needle in [
        (tmp_path / "missing", "no such model directory"),
        (no_labels, "no label map"),
        (corrupt, "cannot read config.json"),
    ]:
        code, err = run(["predict", "--model", str(directory), "--input", str(source)], capsys)
        assert code == 2
        assert_one_line_error(err, "predict", str(directory), needle)


# --- config -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("gamma: abc\n", "c.yaml: gamma: expected a number, got 'abc'"),
        ("max_length: 1.5\n", "c.yaml: max_length: expected an integer, got 1.5"),
        ("gamma: null\n", "c.yaml: gamma: expected a number, got null"),
        ("label_all_tokens: maybe\n", "c.yaml: label_all_tokens: expected true or false, got 'maybe'"),
        ("tokenizer_name: [a, b]\n", "c.yaml: tokenizer_name: expected a string, got ['a', 'b']"),
        ("eval_strategy: no\n", "eval_strategy: expected one of no, steps, epoch, got False (YAML reads"),
        ("max_steps: ten\n", "c.yaml: max_steps: expected an integer, got 'ten'"),
        ("gama: 2\n", "c.yaml: unknown key 'gama' (did you mean 'gamma'?)"),
        ("gamma: -1\n", "gamma: expected a number >= 0, got -1.0"),
        ("margin: 0.5\n", "margin: expected a number in (0.5, 1), got 0.5"),
        ("alpha: [0.1, oops]\n", "alpha: expected none, a number, 'auto', a list or a mapping"),
        ("- gamma\n", "c.yaml: expected a mapping of option: value, got list"),
    ],
)
def test_bad_yaml_values_are_value_errors_naming_the_key(
    yaml_text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_config([str(path)])
    code, err = run(["train", str(path)], capsys)
    assert code == 2
    assert_one_line_error(err, "train", message)


def test_yaml_values_are_converted_like_the_command_line() -> None:
    import yaml

    from nerfocal.config import build_parser, coerce_value

    actions = {a.dest: a for a in build_parser()._actions}
    data = yaml.safe_load("learning_rate: 1e-5\nmax_length: 64.0\nlabel_all_tokens: yes\nalpha: 0.75\n")
    assert {k: coerce_value(k, v, actions[k]) for k, v in data.items()} == {
        "learning_rate": 1e-5,  # YAML 1.1 reads 1e-5 as a string
        "max_length": 64,
        "label_all_tokens": True,
        "alpha": 0.75,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gamma", "abc"], "argument --gamma: invalid float value: 'abc'"),
        (["--max_length", "1.5"], "argument --max_length/--max-length: invalid int value: '1.5'"),
        (["--eval_strategy", "often"], "argument --eval_strategy/--eval-strategy: invalid choice: 'often'"),
        (["--gamma"], "argument --gamma: expected one argument"),
        (["--gamme", "2"], "unknown command-line arguments: --gamme 2"),
    ],
)
def test_bad_command_line_values_are_value_errors_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_config(argv)
    code, err = run(["train", *argv], capsys)
    assert code == 2
    assert_one_line_error(err, "train", message)


def test_configs_built_in_python_check_their_types() -> None:
    with pytest.raises(ValueError, match=r"gamma: expected a number, got 'abc'"):
        LossConfig(gamma="abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_length: expected an integer, got 1.5"):
        DataConfig(max_length=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"prior_floor: expected a number in \(0, 1\]"):
        ModelConfig(prior_floor=0.0)
    assert LossConfig(gamma=1).gamma == 1.0 and isinstance(LossConfig(gamma=1).gamma, float)


def test_saved_config_reads_back(tmp_path: Path) -> None:
    from nerfocal.config import save_config

    configs = parse_config(["--alpha", '{"O": 0.8}', "--max_length", "64", "--output_dir", str(tmp_path)])
    save_config(tmp_path / "run.yaml", *configs)
    again = parse_config([str(tmp_path / "run.yaml")])
    assert again[2].alpha == {"O": 0.8} and again[1].max_length == 64
    assert [p.name for p in tmp_path.iterdir()] == ["run.yaml"]  # no temporary file left


# --- faults and atomic outputs ----------------------------------------------------------------------


def test_loss_side_nan_stops_training_with_one_line_naming_step_and_loss(
    tmp_path: Path,
    tiny_encoder_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nerfocal.trainer

    def nan_loss(name: str, logits: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return logits.sum() * float("nan")

    monkeypatch.setattr(nerfocal.trainer, "compute_loss", nan_loss)
    code, err = run(_train_one_step(tmp_path, tiny_encoder_dir), capsys)
    assert code == 1
    needles = ("step 1:", "NaN or infinite (the focal loss)", "checkpoint-diverged-0")
    assert_one_line_error(err, "train", *needles)
    saved = tmp_path / "run" / "checkpoint-diverged-0"
    assert (saved / "model.safetensors").is_file() and (saved / "config.json").is_file()
    assert not [p for p in saved.iterdir() if p.name.startswith(".")]  # the staging folder is gone


def test_interrupted_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    from nerfocal.documents import open_output
    from nerfocal.io import write_json as write_json_atomic

    target = tmp_path / "out.json"
    target.write_text("previous\n", encoding="utf-8")
    for opener in (atomic_open, open_output):
        with pytest.raises(RuntimeError), opener(str(target)) as handle:
            handle.write('{"half": ')
            raise RuntimeError("crash while writing")
        assert target.read_text(encoding="utf-8") == "previous\n"
        assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    write_json_atomic(target, {"done": True})
    assert json.loads(target.read_text()) == {"done": True}


def test_saved_model_files_are_renamed_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from fixtures import make_trainer, sample_features

    features, tokenizer = sample_features(4)
    trainer = make_trainer(tmp_path, features, tokenizer)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model-00001-of-00002.safetensors").write_bytes(b"a stale shard of an earlier save")
    renamed: list[str] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    trainer.save_model(str(model))
    names = sorted(p.name for p in model.iterdir())
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(renamed)
    assert "model-00001-of-00002.safetensors" not in names and not [n for n in names if n.startswith(".")]


# --- safe loading -------------------------------------------------------------------------------------


class _Boom:
    def __reduce__(self) -> Any:
        return (Path.touch, (Path(_Boom.marker),))

    marker = ""


def test_pickled_weights_are_never_loaded(tmp_path: Path, model_dir: Path) -> None:
    directory = tmp_path / "pickled"
    directory.mkdir()
    for f in model_dir.iterdir():
        if f.suffix != ".safetensors":
            (directory / f.name).write_bytes(f.read_bytes())
    _Boom.marker = str(tmp_path / "code-was-run")
    (directory / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _Boom()}))
    with pytest.raises(ValueError, match=r"cannot load the model weights"):
        Predictor.from_pretrained(directory)
    assert not (tmp_path / "code-was-run").exists()


def test_remote_code_is_off_unless_asked() -> None:
    import argparse
    import inspect

    from nerfocal.cli import evaluate as cli_evaluate
    from nerfocal.cli import predict as cli_predict

    assert ModelConfig().trust_remote_code is False
    assert parse_config([])[0].trust_remote_code is False
    assert inspect.signature(Predictor.from_pretrained).parameters["trust_remote_code"].default is False
    for module, argv in ((cli_predict, []), (cli_evaluate, ["--data", "d"])):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert parser.parse_args(["--model", "m", *argv]).trust_remote_code is False
