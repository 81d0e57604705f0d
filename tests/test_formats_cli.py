"""`nerfocal convert` and `nerfocal train` reading annotation-tool exports directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import build_tiny_model
from test_formats import label_studio_export

from nerfocal.cli import main as cli_main
from nerfocal.config import parse_config
from nerfocal.data import load_ner_data

LS_TEXTS = ["Anna Kowalska visited Kraków .", "The Vistula flows north .", "Maria Nowak met Jan ."]


def _ls_tasks(path: Path) -> Path:
    tasks = []
    for i, text in enumerate(LS_TEXTS):
        first = text.split(" ")[0]
        value = {"start": 0, "end": len(first), "text": first, "labels": ["PER" if i != 1 else "MISC"]}
        result = [{"type": "labels", "from_name": "label", "to_name": "text", "id": f"r{i}", "value": value}]
        tasks.append({"id": i + 1, "data": {"text": text}, "annotations": [{"id": i, "result": result}]})
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def _doccano(path: Path) -> Path:
    lines = [{"text": t, "label": [[0, len(t.split(" ")[0]), "PER"]]} for t in LS_TEXTS]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_training_data_reads_a_label_studio_export_and_a_doccano_file(tmp_path: Path) -> None:
    ls = _ls_tasks(tmp_path / "export.json")
    dc = _doccano(tmp_path / "dev.jsonl")
    _, data_cfg, _, _ = parse_config(["--train_file", str(ls), "--validation_file", str(dc)])
    data = load_ner_data(data_cfg)
    train = data.sentences["train"]
    assert [s.tokens for s in train] == [t.split(" ") for t in LS_TEXTS]
    assert train[0].tags == ["B-PER", "O", "O", "O", "O"] and train[1].tags[0] == "B-MISC"
    assert data.sentences["validation"][2].tags == ["B-PER", "O", "O", "O", "O"]


def test_nerfocal_train_runs_on_a_label_studio_export(tmp_path: Path) -> None:
    encoder = build_tiny_model(tmp_path / "encoder", labels=["O", "B-X"])
    ls = _ls_tasks(tmp_path / "export.json")
    code = cli_main(
        ["train", "--model_name_or_path", str(encoder), "--train_file", str(ls), "--max_steps", "2",
         "--output_dir", str(tmp_path / "run"), "--use_cpu", "true", "--disable_tqdm", "true"]
    )  # fmt: skip
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(config["label2id"]) == {"O", "B-PER", "I-PER", "B-MISC", "I-MISC"}


def test_misaligned_spans_in_training_data_are_an_error_unless_snapped(tmp_path: Path) -> None:
    export = label_studio_export(tmp_path)
    with pytest.raises(ValueError, match="inside a word"):
        load_ner_data(parse_config(["--train_file", str(export)])[1])
    data = load_ner_data(parse_config(["--train_file", str(export), "--misaligned_spans", "snap"])[1])
    assert data.sentences["train"]


def test_convert_command_round_trips_and_reports_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conll = tmp_path / "in.conll"
    conll.write_text("Anna B-PER\nNowak I-PER\nvisited O\nParis B-LOC\n\nHi O\n\n", encoding="utf-8")
    tasks = tmp_path / "tasks.json"
    assert cli_main(["convert", str(conll), str(tasks), "--to", "labelstudio"]) == 0
    assert "entities" in capsys.readouterr().err
    back = tmp_path / "back.conll"
    assert cli_main(["convert", str(tasks), str(back)]) == 0
    assert back.read_bytes() == conll.read_bytes()
    assert cli_main(["convert", str(conll), str(conll)]) == 2
    assert "error" in capsys.readouterr().err
