"""Figures and the run report: valid PNGs, the expected sections, counts that add up (issue 9)."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import SAMPLE, build_tiny_model

from nerfocal.cli import main as cli_main
from nerfocal.report import (
    ERROR_KINDS,
    SECTIONS,
    classify_errors,
    confusion_matrix,
    error_summary,
    read_predictions,
    write_report,
)

pytest.importorskip("matplotlib")


def read_png(path: Path) -> np.ndarray:
    """Decode a PNG with matplotlib (PIL-free); ``[H, W, 3 | 4]`` floats."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 200, image.shape
    assert image[..., :3].std() > 0.01, f"{path} is blank"
    return image


def seqeval_fp_fn(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int]:
    """False positives and negatives as seqeval's default mode counts them (its own chunker)."""
    from seqeval.metrics.sequence_labeling import get_entities

    true, found = set(get_entities(gold)), set(get_entities(pred))
    return len(found - true), len(true - found)


def kind_fp_fn(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int]:
    summary = error_summary(classify_errors(gold, pred))
    return sum(s["false_positives"] for s in summary.values()), sum(
        s["false_negatives"] for s in summary.values()
    )


def head_conll(source: Path, n: int, target: Path) -> Path:
    target.write_text(
        "\n\n".join(source.read_text(encoding="utf-8").split("\n\n")[:n]) + "\n", encoding="utf-8"
    )
    return target


# ---- pure functions ----------------------------------------------------------------------------


def test_loss_curves_follow_the_formulas() -> None:
    from nerfocal.report.plots import loss_curves

    p = np.array([0.05, 0.3, 0.59, 0.61, 0.9, 1.0])
    curves = loss_curves(p, gammas=(0.5, 2.0), margin=0.6, k=10.0)
    ce = -np.log(p)
    np.testing.assert_allclose(curves["cross-entropy (γ = 0)"], ce, atol=1e-12)
    np.testing.assert_allclose(curves["focal γ = 2"], (1 - p) ** 2 * ce, atol=1e-12)
    np.testing.assert_allclose(curves["focal γ = 0.5"], (1 - p) ** 0.5 * ce, atol=1e-12)
    np.testing.assert_allclose(curves["margin m = 0.6"], np.where(p < 0.6, ce, 0.0), atol=1e-12)
    soft = curves["soft margin m = 0.6, k = 10"]
    assert (soft <= ce + 1e-12).all() and soft[0] == pytest.approx(ce[0], rel=1e-6) and soft[-1] == 0


def test_error_kinds_on_a_hand_built_example_add_up_to_seqeval() -> None:
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O"],
        ["B-ORG", "I-ORG", "I-ORG", "O", "O", "B-PER"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-LOC"],  # right, wrong type, missed, spurious
        ["B-ORG", "I-ORG", "O", "O", "B-LOC", "I-LOC"],  # wrong boundary, type-and-boundary
    ]
    cases = classify_errors(gold, pred)
    assert [(c.kind, c.sentence, c.gold, c.pred) for c in cases] == [
        ("wrong type", 0, ("LOC", 3, 4), ("ORG", 3, 4)),
        ("missed entity", 0, ("ORG", 5, 6), None),
        ("spurious entity", 0, None, ("LOC", 6, 7)),
        ("wrong boundary", 1, ("ORG", 0, 3), ("ORG", 0, 2)),
        ("wrong type and boundary", 1, ("PER", 5, 6), ("LOC", 4, 6)),
    ]
    summary = error_summary(cases)
    assert set(summary) == set(ERROR_KINDS) and all(s["count"] == 1 for s in summary.values())
    assert kind_fp_fn(gold, pred) == seqeval_fp_fn(gold, pred) == (4, 4)


@pytest.mark.parametrize("prefixes", ["BI", "BIES"])
def test_error_kinds_add_up_to_seqeval_on_random_tags(prefixes: str) -> None:
    # invalid transitions included (I- after O, E- without B-): the chunking must still agree
    rng = random.Random(0)
    labels = ["O", "O", "O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC")]
    gold, pred = [], []
    for _ in range(400):
        n = rng.randint(1, 9)
        gold.append([rng.choice(labels) for _ in range(n)])
        pred.append([rng.choice(labels) for _ in range(n)])
    assert kind_fp_fn(gold, pred) == seqeval_fp_fn(gold, pred)


def test_confusion_matrix_counts_every_word_once() -> None:
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"]]
    pred = [["B-PER", "B-LOC", "O"], ["O", "B-PER"]]
    matrix, labels = confusion_matrix(gold, pred)
    assert labels == ["O", "LOC", "PER"]
    assert matrix.tolist() == [[1, 0, 1], [1, 0, 0], [0, 1, 1]]  # rows gold, columns predicted
    assert matrix.sum() == 5


# ---- commands ----------------------------------------------------------------------------------


def test_plot_losses_writes_a_readable_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "losses.png"
    assert cli_main(["plot", "losses", "--output", str(out)]) == 0
    read_png(out)
    assert str(out) in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_missing_matplotlib_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    assert cli_main(["plot", "losses", "--output", str(tmp_path / "l.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'nerfocal[plot]'" in err
    from nerfocal.report.plots import require_matplotlib

    with pytest.raises(ModuleNotFoundError, match=r"nerfocal\[plot\]"):
        require_matplotlib()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny focal-loss run (CE warm-up of 3 steps, dev evaluations) trained in-process."""
    tmp = tmp_path_factory.mktemp("plots_run")
    encoder = build_tiny_model(tmp / "encoder", labels=["O", "B-X"])
    out = tmp / "run"
    argv = ["train", "--model_name_or_path", str(encoder), "--train_file", str(SAMPLE / "train.conll")]
    argv += ["--validation_file", str(head_conll(SAMPLE / "dev.conll", 30, tmp / "dev.conll"))]
    argv += ["--test_file", str(head_conll(SAMPLE / "test.conll", 30, tmp / "test.conll"))]
    argv += ["--max_train_samples", "64", "--max_steps", "8", "--per_device_train_batch_size", "16"]
    argv += ["--learning_rate", "2e-2", "--ce_warmup_steps", "3", "--max_length", "64"]
    argv += ["--eval_strategy", "steps", "--eval_steps", "4", "--logging_steps", "2", "--report_to", "none"]
    argv += ["--output_dir", str(out), "--disable_tqdm", "true", "--use_cpu", "true"]
    assert cli_main(argv) == 0
    return out


def test_training_writes_predictions_and_a_report_with_every_section(run_dir: Path) -> None:
    for split in ("validation", "test"):
        words = read_predictions(run_dir / f"predictions_{split}.jsonl")
        assert words.confidence is not None and all(c is not None for cs in words.confidence for c in cs)
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## {section}" in markdown and f"<h2>{section}</h2>" in page, section
    for kind in ERROR_KINDS:
        assert f"| {kind} |" in markdown
    images = re.findall(r"!\[[^]]*\]\((report/[^)]+\.png)\)", markdown)
    assert sorted(images) == [
        f"report/{n}.png" for n in ("confusion", "per_type_f1", "reliability", "training")
    ]
    for image in images:
        read_png(run_dir / image)
    assert page.count('src="data:image/png;base64,') == 4 and 'src="report/' not in page  # self-contained


def test_confusion_matrix_sums_to_the_evaluated_tokens(run_dir: Path) -> None:
    results = json.loads((run_dir / "eval_results.json").read_text())
    for split in ("validation", "test"):
        words = read_predictions(run_dir / f"predictions_{split}.jsonl")
        matrix, labels = confusion_matrix(words.gold, words.pred)
        assert labels[0] == "O"
        assert matrix.sum() == sum(len(t) for t in words.tokens) == results[split]["tokens"]
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    assert f"{results['test']['tokens']} words; rows are gold types" in markdown


def test_word_confidences_reproduce_the_runs_ece(run_dir: Path) -> None:
    from nerfocal.metrics import expected_calibration_error
    from nerfocal.report import reliability_arrays

    results = json.loads((run_dir / "eval_results.json").read_text())
    for split in ("validation", "test"):
        confidence, correct = reliability_arrays(read_predictions(run_dir / f"predictions_{split}.jsonl"))
        ece = expected_calibration_error(confidence, correct)
        assert ece == pytest.approx(results[split]["ece"], abs=1e-4)  # confidences are rounded to 1e-6


def test_error_kinds_of_the_run_add_up_to_seqeval(run_dir: Path) -> None:
    results = json.loads((run_dir / "eval_results.json").read_text())
    words = read_predictions(run_dir / "predictions_test.jsonl")
    fp, fn = seqeval_fp_fn(words.gold, words.pred)
    assert kind_fp_fn(words.gold, words.pred) == (fp, fn)
    support = sum(m["support"] for m in results["test"]["per_type"].values())
    assert results["test"]["recall"] == pytest.approx((support - fn) / support)  # the same seqeval counts
    table = re.search(r"\| kind \| count \| FP \| FN \|.*?\n\n", (run_dir / "report.md").read_text(), re.S)
    assert table is not None
    rows = [line.split("|")[1:5] for line in table.group(0).splitlines()[2:] if line]
    assert sum(int(r[2]) for r in rows) == fp and sum(int(r[3]) for r in rows) == fn


def test_plot_training_marks_the_switch_and_writes_a_png(run_dir: Path, tmp_path: Path) -> None:
    from nerfocal.report.plots import training_series

    state = json.loads((run_dir / "trainer_state.json").read_text())
    parsed = training_series(state["log_history"])
    assert parsed["switches"] == [(3, "focal")]
    assert {"train loss", "eval loss", "learning rate", "dev F1"} <= set(parsed["series"])
    out = tmp_path / "curves.png"
    assert cli_main(["plot", "training", str(run_dir), "--output", str(out)]) == 0
    read_png(out)


def test_plot_training_falls_back_to_the_latest_checkpoint(tmp_path: Path) -> None:
    from nerfocal.cli.plot import find_trainer_state

    for step in (2, 10, 9):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text('{"log_history": []}')
    assert find_trainer_state(tmp_path) == tmp_path / "checkpoint-10" / "trainer_state.json"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no trainer_state\.json"):
        find_trainer_state(tmp_path / "empty")


def test_report_command_rebuilds_into_another_folder(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "rep"
    argv = ["report", str(run_dir), "--split", "validation", "--report-dir", str(target), "--format", "md"]
    assert cli_main(argv) == 0
    markdown = (target / "report.md").read_text(encoding="utf-8")
    assert (
        "Word-level analysis on: the validation split." in markdown and not (target / "report.html").exists()
    )
    assert all((target / "report" / f"{n}.png").is_file() for n in ("confusion", "reliability", "training"))


def test_report_of_a_model_directory_predicts_the_data_file(tmp_path: Path) -> None:
    from fixtures import fit_tiny_model, save_tiny_model

    from nerfocal.conll import read_conll

    data = tmp_path / "gold.conll"
    data.write_text(
        "Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n. O\n\n"
        "The O\nUnited B-ORG\nNations I-ORG\nmet O\nin O\nBerlin B-LOC\nand O\nLondon B-LOC\n. O\n\n"
        "Reuters B-ORG\nsaid O\nMüller B-PER\nplays O\nin O\nSão B-LOC\nPaulo I-LOC\n. O\n",
        encoding="utf-8",
    )
    gold = [(s.tokens, s.tags or []) for s in read_conll(data)]
    model = fit_tiny_model(save_tiny_model(tmp_path / "model", max_length=24), gold[:1], steps=5)
    assert cli_main(["report", str(model), "--data", str(data), "--device", "cpu"]) == 0
    markdown = (model / "report.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## {section}" in markdown
    assert f"Word-level analysis on: {data}." in markdown and "22 words; rows are gold types" in markdown
    assert "No trainer_state.json" in markdown  # a model directory: no training log, still a report


def test_report_without_matplotlib_keeps_the_tables(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    write_report(run_dir, output_dir=tmp_path, formats=("md",))
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| kind | count | FP | FN |" in markdown and "![" not in markdown
    assert "Figures left out: matplotlib is not installed" in markdown


def test_the_checkpoint_kept_by_early_stopping_is_named_and_starred(run_dir: Path, tmp_path: Path) -> None:
    from nerfocal.report.blocks import Text, _Figures, _section_training_curves
    from nerfocal.report.plots import plot_training

    state = json.loads((run_dir / "trainer_state.json").read_text())
    evals = [h for h in state["log_history"] if "eval_f1" in h]
    kept = evals[0]
    state["best_global_step"] = kept["step"]
    blocks = _section_training_curves(state, _Figures(tmp_path / "img"))
    sentences = [b.text for b in blocks if isinstance(b, Text)]
    assert any(
        f"checkpoint of step {kept['step']}" in t and f"{100 * kept['eval_f1']:.2f}" in t for t in sentences
    )
    assert not any("by dev" in t for t in sentences)  # chosen by dev F1: nothing more to say
    kept["eval_viterbi_f1"], state["best_metric"] = 0.4321, 0.4321  # chosen by another logged metric
    texts = [
        b.text for b in _section_training_curves(state, _Figures(tmp_path / "img")) if isinstance(b, Text)
    ]
    assert any("by dev viterbi_f1 0.4321; dev F1" in t for t in texts)
    plain = plot_training(state["log_history"], tmp_path / "plain.png")
    starred = plot_training(state["log_history"], tmp_path / "starred.png", best_step=kept["step"])
    assert plot_training(state["log_history"], tmp_path / "again.png") == plain  # deterministic bytes
    assert plain != starred
    state["best_global_step"] = None
    assert not any(
        "Early stopping" in b.text
        for b in _section_training_curves(state, _Figures(tmp_path))
        if isinstance(b, Text)
    )
