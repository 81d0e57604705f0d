"""The ecosystem pieces reached from the command lines: HTML output, the HF seqeval shape, the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import IOB2_LABELS, save_tiny_model

from nerfocal.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("wiring"), IOB2_LABELS, max_length=24)


def test_predict_html_output_is_one_page_with_every_document(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text(
        "Angela Merkel visited Paris .\n<script>alert(1)</script> in Berlin\n", encoding="utf-8"
    )
    out = tmp_path / "out.html"
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out), "--quiet"]
    assert main([*argv, "--output-format", "html", "--device", "cpu"]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("Merkel") == 1 and "<script>alert" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page


def test_evaluate_hf_output_has_the_evaluate_seqeval_shape(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "gold.conll"
    data.write_text("Angela B-PER\nMerkel I-PER\nvisited O\nParis B-LOC\n\n", encoding="utf-8")
    out = tmp_path / "hf.json"
    argv = ["evaluate", "--model", str(model_dir), "--data", str(data), "--output", str(out), "--quiet"]
    assert main([*argv, "--output-format", "hf", "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert {"overall_precision", "overall_recall", "overall_f1", "overall_accuracy"} <= set(result)
    for etype in ("PER", "LOC"):
        assert set(result[etype]) == {"precision", "recall", "f1", "number"} and result[etype]["number"] == 1


def test_training_writes_a_card_and_the_card_command_rewrites_it(tmp_path: Path) -> None:
    from fixtures import SAMPLE, build_tiny_model

    encoder = build_tiny_model(tmp_path / "encoder")
    out = tmp_path / "run"
    argv = ["train", "--model_name_or_path", str(encoder), "--train_file", str(SAMPLE / "train.conll"),
            "--validation_file", str(SAMPLE / "dev.conll"), "--max_steps", "2", "--output_dir", str(out),
            "--use_cpu", "true", "--disable_tqdm", "true", "--max_length", "64"]  # fmt: skip
    assert main(argv) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---")[1])
    f1 = json.loads((out / "eval_results.json").read_text())["validation"]["f1"]
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert any(m["type"] == "f1" and m["value"] == pytest.approx(f1) for m in metrics)
    (out / "README.md").unlink()
    assert main(["card", "--model", str(out)]) == 0
    assert (out / "README.md").read_text(encoding="utf-8") == card


def test_report_error_examples_are_highlighted_in_html_and_bracketed_in_markdown(tmp_path: Path) -> None:
    from nerfocal.report import WordPredictions, write_report

    tokens = [["Anna", "Nowak", "visited", "Kraków", "today"], ["The", "Vistula", "flows"]]
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "B-ORG", "O"], ["O", "O", "O"]]
    words = WordPredictions(tokens, gold, pred, None)
    write_report(tmp_path, words=words, source="gold.conll")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('class="nf-sbs"') >= 3  # wrong boundary, wrong type, missed
    assert "Kraków" in page and "nf-wrong" in page
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "nf-sbs" not in markdown and "`[Anna Nowak]PER visited [Kraków]LOC today`" in markdown


def test_push_to_hub_uploads_the_finished_run_to_hub_model_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import nerfocal.hub
    from nerfocal.training import push_if_asked

    calls = []
    monkeypatch.setattr(nerfocal.hub, "push_run", lambda *a, **k: calls.append((a, k)) or "commit")
    args = SimpleNamespace(push_to_hub=False, hub_model_id=None, hub_token=None, hub_private_repo=None)
    assert push_if_asked(args, tmp_path) is None and calls == []
    args.push_to_hub, args.hub_model_id, args.hub_private_repo = True, "me/ner", True
    assert push_if_asked(args, tmp_path) == "commit"
    assert calls == [((tmp_path, "me/ner"), {"token": None, "private": True})]
    args.hub_model_id = None
    push_if_asked(args, tmp_path)
    assert calls[-1][0] == (tmp_path, tmp_path.name)
