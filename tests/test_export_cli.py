"""`nerfocal export` then `nerfocal predict` on the exported directory, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import IOB2_LABELS, save_tiny_model

from nerfocal.cli import main

pytest.importorskip("onnxruntime", reason="the onnx extra (pip install nerfocal[onnx]) is not installed")


def test_export_then_predict_with_onnx_gives_the_torch_entities(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "m", IOB2_LABELS, max_length=24)
    exported = tmp_path / "onnx"
    assert main(["export", "--model", str(model), "--output", str(exported)]) == 0
    assert (exported / "model.onnx").is_file() and not (exported / "model.safetensors").exists()
    text = tmp_path / "in.txt"
    text.write_text(
        "Angela Merkel visited Paris .\nThe European Union met in São Paulo .\n", encoding="utf-8"
    )
    outputs = {}
    for name, directory, backend in (("torch", model, "torch"), ("onnx", exported, "auto")):
        out = tmp_path / f"{name}.jsonl"
        argv = ["predict", "--model", str(directory), "--input", str(text), "--output", str(out), "--quiet"]
        assert main([*argv, "--backend", backend, "--device", "cpu"]) == 0
        outputs[name] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for ours, theirs in zip(outputs["torch"], outputs["onnx"], strict=True):
        assert [(e["label"], e["start"], e["end"]) for e in ours["entities"]] == [
            (e["label"], e["start"], e["end"]) for e in theirs["entities"]
        ]
        for a, b in zip(ours["entities"], theirs["entities"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_export_refuses_a_missing_model_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--model", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nerfocal export: error:") and len(err.splitlines()) == 1
