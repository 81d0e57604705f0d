"""The decision bias on O (nerfocal.decision): option parsing, the dev fit, scoring, Predictor, training."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import IOB2_LABELS, SAMPLE, build_tiny_model, save_tiny_model

from nerfocal.cli import main as cli_main
from nerfocal.config import LossConfig, parse_config
from nerfocal.conll import Sentence
from nerfocal.decision import O_BIAS_GRID, fit_o_bias, parse_o_bias
from nerfocal.encode import Window
from nerfocal.evaluate import score_logits
from nerfocal.predict import Predictor
from nerfocal.report.analysis import word_confidences

LABELS = ["O", "B-PER", "I-PER"]
ID2LABEL = dict(enumerate(LABELS))


@pytest.mark.parametrize(("value", "stored"), [("auto", "auto"), (0, "0.0"), ("0.5", "0.5"), (-1, "-1.0")])
def test_the_option_takes_auto_or_a_number_from_yaml_and_flags(value: object, stored: str) -> None:
    assert parse_o_bias(value) == stored
    assert LossConfig(o_bias=value).o_bias == stored  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["abc", "nan", "inf", True, None, ""])
def test_a_bad_value_is_one_line_naming_the_option(value: object) -> None:
    with pytest.raises(ValueError, match=r"^o_bias: expected 'auto' or a number \(0 = no bias\), got "):
        LossConfig(o_bias=value)  # type: ignore[arg-type]


def test_yaml_number_and_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("o_bias: 1.25\noutput_dir: out\n")
    assert parse_config([str(cfg)])[2].o_bias == "1.25"
    assert parse_config([str(cfg), "--o_bias", "auto"])[2].o_bias == "auto"
    assert LossConfig().o_bias == "0.0"  # off unless asked


def test_the_fit_takes_the_best_score_and_breaks_ties_towards_zero() -> None:
    bias, scores = fit_o_bias(lambda b: -((b - 1.0) ** 2))
    assert bias == 1.0 and set(scores) == set(O_BIAS_GRID) and min(O_BIAS_GRID) == -1.0
    assert fit_o_bias(lambda b: 0.5)[0] == 0.0  # flat: no bias
    assert fit_o_bias(lambda b: 1.0 if abs(b) in (0.5, 1.0) else 0.0)[0] == 0.5  # then +0.5 over -0.5


def test_a_bias_at_the_end_of_the_range_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from nerfocal.evaluate import choose_o_bias

    raw = {"validation": None}
    with caplog.at_level(logging.INFO, logger="nerfocal"):
        # the fit reads the Viterbi score, not the argmax one
        falling = lambda split, o_bias, viterbi: {"viterbi_f1": -o_bias, "f1": 0.0}  # noqa: E731
        assert choose_o_bias("auto", raw, falling) == -1.0
    assert "o_bias auto: -1 is the end of the searched range -1..3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nerfocal"):
        peaked = lambda split, o_bias, viterbi: {"viterbi_f1": -abs(o_bias - 0.5), "f1": -o_bias}  # noqa: E731
        assert choose_o_bias("auto", raw, peaked) == 0.5
        assert choose_o_bias("0.75", {}, None) == 0.75
        assert choose_o_bias("auto", {}, None) == 0.0
    assert "end of the searched range" not in caplog.text and "no dev set to choose it on" in caplog.text


def _one_sentence() -> tuple[np.ndarray, np.ndarray, list[Window], list[Sentence]]:
    # one window [CLS] Ada Lovelace [SEP]: O beats B-PER by 0.4 on "Ada", I-PER by 0.3 on "Lovelace"
    logits = np.array([[[0, 0, 0], [1.0, 0.6, -2], [1.0, -2, 0.7], [0, 0, 0]]], dtype=np.float32)
    labels = np.array([[-100, 1, 2, -100]])
    window = Window(sentence_index=0, word_offset=0, first_subwords=[1, 2])
    sentence = Sentence(tokens=["Ada", "Lovelace"], tags=["B-PER", "I-PER"], line=1)
    return logits, labels, [window], [sentence]


def test_scoring_moves_the_decision_but_not_the_calibration() -> None:
    logits, labels, windows, sentences = _one_sentence()
    plain, tags = score_logits(logits, labels, windows, sentences, ID2LABEL)
    assert tags == [["O", "O"]] and plain["f1"] == 0.0
    biased, tags = score_logits(logits, labels, windows, sentences, ID2LABEL, o_bias=0.5)
    assert tags == [["B-PER", "I-PER"]] and biased["f1"] == 1.0
    assert biased["ece"] == plain["ece"] and biased["nll"] == plain["nll"]
    # the bias acts after the temperature: at T = 2 the margins halve, so 0.25 is enough
    assert score_logits(logits, labels, windows, sentences, ID2LABEL, temperature=2.0, o_bias=0.25)[1] == [
        ["B-PER", "I-PER"]
    ]
    # the report's confidences are those of the chosen class, not of the argmax
    choices = np.array([[0, 1, 2, 0]])
    confidence = word_confidences(logits, windows, sentences, 1.0, choices)[0]
    p = np.exp(logits[0, 1]) / np.exp(logits[0, 1]).sum()
    assert confidence[0] == pytest.approx(p[1]) and word_confidences(logits, windows, sentences)[0][0] == (
        pytest.approx(p[0])
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), IOB2_LABELS, entity_bias=-2.0)


def test_predictor_reads_the_saved_bias_and_keeps_the_scores(model_dir: Path, tmp_path: Path) -> None:
    texts = ["Angela Merkel visited Paris in June .", "the cat sat on the mat"]
    plain = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax")
    assert plain.o_bias == 0.0
    documents = [plain.document(t) for t in texts]
    base = list(plain.predict_documents(documents))
    eager = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax", o_bias=50.0)
    shy = Predictor.from_pretrained(model_dir, device="cpu", decode="argmax", o_bias=-50.0)
    for before, more, fewer in zip(
        base, eager.predict_documents(documents), shy.predict_documents(documents), strict=True
    ):
        assert "O" not in more.tags and set(fewer.tags) == {"O"}
        # scores are the model's probabilities of the chosen tags: the same where the tag is the same
        for k, tag in enumerate(before.tags):
            same = more if more.tags[k] == tag else fewer if fewer.tags[k] == tag else None
            assert same is None or same.scores[k] == pytest.approx(before.scores[k], abs=1e-6)
        assert all(0 < s < 1 for s in more.scores)
    config = json.loads((model_dir / "config.json").read_text())
    saved = tmp_path / "saved"
    saved.mkdir()
    for f in model_dir.iterdir():
        (saved / f.name).write_bytes(f.read_bytes())
    (saved / "config.json").write_text(json.dumps({**config, "nerfocal_o_bias": 50.0}))
    from_config = Predictor.from_pretrained(saved, device="cpu", decode="argmax")
    assert from_config.o_bias == 50.0
    assert [p.tags for p in from_config.predict_documents(documents)] == [
        p.tags for p in eager.predict_documents(documents)
    ]
    assert Predictor.from_pretrained(saved, device="cpu", o_bias=0).o_bias == 0.0  # the argument wins
    viterbi = Predictor.from_pretrained(saved, device="cpu")  # valid sequences still: no I- after O
    for prediction in viterbi.predict_documents(documents):
        assert "O" not in prediction.tags and prediction.tags[0].startswith("B-")


def test_cli_option_is_a_number_with_one_line_errors(model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.txt"
    source.write_text("Angela Merkel visited Paris\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    for bad, needle in (("abc", "got 'abc'"), ("auto", "'auto' is chosen at training")):
        with pytest.raises(SystemExit) as exit_info:
            cli_main([*argv, "--o-bias", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --o-bias" in err and needle in err and "Traceback" not in err
    assert cli_main([*argv, "--o-bias", "50"]) == 0
    entities = json.loads(out.read_text().splitlines()[0])["entities"]
    assert len(entities) >= 1 and entities[0]["start"] == 0  # every word is in an entity


def test_training_fits_the_bias_on_dev_saves_it_and_scores_test_with_it(tmp_path: Path) -> None:
    encoder = build_tiny_model(tmp_path / "encoder")
    out = tmp_path / "run"
    sample, dev = str(SAMPLE / "train.conll"), str(SAMPLE / "dev.conll")
    argv = ["train", "--model_name_or_path", str(encoder), "--train_file", sample, "--validation_file", dev,
            "--test_file", dev, "--max_train_samples", "40", "--max_steps", "2",
            "--output_dir", str(out), "--use_cpu", "true", "--disable_tqdm", "true", "--max_length", "64",
            "--o_bias", "auto"]  # fmt: skip
    assert cli_main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    bias = config["nerfocal_o_bias"]
    assert bias in O_BIAS_GRID
    results = json.loads((out / "eval_results.json").read_text())
    assert bias != 0.0  # (seeded: this random model gains from -0.25 on its dev set)
    # the fit's gain on dev, read by the decoding it is fitted for (predict's Viterbi)
    assert results["validation"]["viterbi_f1"] > results["validation"]["viterbi_f1_without_o_bias"]
    assert {"f1_without_o_bias", "viterbi_macro_f1_without_o_bias"} <= set(results["validation"])
    assert results["test"]["o_bias"] == bias and "f1_without_o_bias" in results["test"]
    assert Predictor.from_pretrained(out, device="cpu").o_bias == bias
    # the run's Viterbi scores (bias and temperature applied) are the saved model's through `evaluate`
    from nerfocal.evaluate import evaluate_predictor, read_gold

    tokens, gold = read_gold(dev, "conll", "utf-8")
    viterbi = evaluate_predictor(Predictor.from_pretrained(out, device="cpu", decode="viterbi"), tokens, gold)
    for key in ("f1", "precision", "recall", "macro_f1"):
        assert math.isclose(viterbi[key], results["test"][f"viterbi_{key}"], abs_tol=1e-9), key
    # a fixed bias is saved as given and the run's predictions file follows it
    fixed = tmp_path / "fixed"
    argv = [
        *argv[: argv.index("--output_dir") + 1],
        str(fixed),
        *argv[argv.index("--output_dir") + 2 : -1],
        "50",
    ]
    assert cli_main(argv) == 0
    assert json.loads((fixed / "config.json").read_text())["nerfocal_o_bias"] == 50.0
    results = json.loads((fixed / "eval_results.json").read_text())
    assert results["test"]["o_bias"] == 50.0 and "f1_without_o_bias" in results["test"]
    card = (fixed / "README.md").read_text()
    assert "Decoding takes an O bias of 50 off `O`'s log-probability" in card
    viterbi_note = f"(Viterbi: {100 * results['test']['viterbi_f1']:.2f} with it, "
    assert viterbi_note + f"{100 * results['test']['viterbi_f1_without_o_bias']:.2f} without)" in card
    first = json.loads((fixed / "predictions_test.jsonl").read_text().splitlines()[0])
    assert "O" not in first["pred"] and all(math.isfinite(c) and 0 < c <= 1 for c in first["confidence"])
    assert torch.tensor(first["confidence"]).max() < 1.0
