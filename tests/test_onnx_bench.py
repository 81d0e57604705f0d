"""benchmarks/onnx_speed.py (`python benchmarks/benchmark.py onnx`) on the tiny model and the sample data:
every runner is measured and scored, ONNX float32 keeps PyTorch's entities, the table has its columns."""

from __future__ import annotations

import sys

import pytest
from fixtures import IOB2_LABELS, ROOT, SAMPLE, save_tiny_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install nerfocal[onnx])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install nerfocal[onnx])")
sys.path.insert(0, str(ROOT / "benchmarks"))

import onnx_speed

from nerfocal.conll import read_conll


def test_onnx_benchmark_measures_and_scores_every_runner(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = save_tiny_model(tmp_path / "m", IOB2_LABELS, max_length=48)
    sentences = list(read_conll(SAMPLE / "test.conll"))[:12]
    words, gold = [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]
    results = onnx_speed.measure(model, words, gold, gold_scheme="IOB2", repeats=1)
    assert results["sentences"] == 12
    for key, _ in onnx_speed.RUNNERS:
        row = results[key]
        assert row["sentences_per_s"] > 0 and 0 <= row["f1"] <= 1 and 0 <= row["same_entities"] <= 1
    assert results["torch_fp32"]["same_entities"] == 1.0
    assert results["onnx_fp32"]["same_entities"] == 1.0  # the fused float32 graph keeps every entity set
    assert results["onnx_fp32"]["f1"] == results["torch_fp32"]["f1"]
    assert sum(map(len, onnx_speed._pipeline_tags([], ["a", "b"]))) == 2
    assert results["exports"]["onnx_int8"].fused["Attention"] == 2
    monkeypatch.setattr(sys, "argv", ["benchmarks/benchmark.py", "onnx", "--model", str(model)])
    table = onnx_speed.render(results, str(model), threads=1, repeats=1)
    header = "| runner | sentences/s | vs PyTorch float32 | vs pipeline | test F1 | F1 vs float32 |"
    assert header in table and table.count("\n| ") == len(onnx_speed.RUNNERS) + 1
    assert "| PyTorch float32 (`nerfocal predict`) | " in table and "| 1.00x | " in table


def test_pipeline_entities_map_back_to_words() -> None:
    words = ["Angela", "Merkel", "visited", "New", "York-based", "firms"]
    entities = [
        {"entity_group": "PER", "start": 0, "end": 13},  # "Angela Merkel"
        {"entity_group": "LOC", "start": 22, "end": 30},  # "New York" (part of "York-based")
    ]
    assert onnx_speed._pipeline_tags(entities, words) == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
