"""examples/predict_spark_style.py: the engine-style functions tag as `nerfocal predict` does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fixtures import CORPUS, ROOT, save_tiny_model

from nerfocal.cli import main as nerfocal

pd = pytest.importorskip("pandas")
sys.path.insert(0, str(ROOT / "examples"))

import predict_spark_style as example  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("example") / "model")


def _texts() -> list[str]:
    words = " ".join(CORPUS).split()
    return [" ".join(words[i % 40 : i % 40 + (i * 5) % 11]) for i in range(60)]


def _predict_entities(model_dir: Path, tmp_path: Path, texts: list[str]) -> list[list[dict]]:
    source, out = tmp_path / "in.txt", tmp_path / "predict.jsonl"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    assert nerfocal([*argv, "--device", "cpu", "--quiet"]) == 0
    return [json.loads(line)["entities"] for line in out.read_text(encoding="utf-8").splitlines()]


def test_the_spark_function_in_a_plain_loop_gives_the_entities_of_predict(
    model_dir: Path, tmp_path: Path
) -> None:
    texts = _texts()
    table = example.tag_texts(texts, str(model_dir), batch_rows=7)  # 9 frames, the last one short
    assert list(table["id"]) == list(range(len(texts))) and list(table["text"]) == texts
    entities = [json.loads(e) for e in table["entities"]]
    assert entities == _predict_entities(model_dir, tmp_path, texts)
    assert any(entities), "the tiny model should find some entities"


def test_the_ray_style_tagger_keeps_the_other_columns_of_a_batch(model_dir: Path) -> None:
    batch = pd.DataFrame({"id": [7, 3], "text": ["Paris in June", ""], "source": ["a", "b"]})
    tagged = example.Tagger(str(model_dir))(batch)
    assert list(tagged.columns) == ["id", "text", "source", "entities"]
    assert list(tagged["source"]) == ["a", "b"] and json.loads(tagged["entities"][1]) == []


@pytest.mark.slow
def test_the_script_with_two_processes_writes_the_same_file_as_the_loop(
    model_dir: Path, tmp_path: Path
) -> None:
    texts = _texts()
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    outputs = []
    for processes in ("1", "2"):
        out = tmp_path / f"out{processes}.jsonl"
        argv = ["--model", str(model_dir), "--input", str(source), "--output", str(out), "--batch-rows", "8"]
        assert example.main([*argv, "--processes", processes]) == 0
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    records = [json.loads(line) for line in outputs[0].splitlines()]
    assert [r["id"] for r in records] == list(range(len(texts))) and [r["text"] for r in records] == texts
