"""The document-context benchmark's pieces: the seeded document subset, the smoke cut, the training
flags, and the WNUT-17 control verdict (the runs themselves need ../shared/data and hours)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from fixtures import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import context


def _file(tmp_path: Path) -> Path:
    blocks = ["-DOCSTART- -X- -X- O\n\n"]
    for d in range(10):
        blocks.append("".join(f"w{d}_{s} O\n\n" for s in range(3)))
        blocks.append("-DOCSTART- -X- -X- O\n\n")
    path = tmp_path / "train.txt"
    path.write_text("".join(blocks), encoding="utf-8")
    return path


def test_subset_takes_whole_documents_seeded_in_file_order(tmp_path: Path) -> None:
    documents = context.split_documents(_file(tmp_path))
    assert len(documents) == 10 and all(sum(1 for line in d if line.strip()) == 3 for d in documents)
    chosen = context.subset_documents(documents, 0.3)
    assert len(chosen) == 3 and chosen == context.subset_documents(documents, 0.3)
    assert [documents.index(d) for d in chosen] == sorted(documents.index(d) for d in chosen)
    assert context.subset_documents(documents, 1.0) == documents
    out = context._write(tmp_path / "sub.txt", chosen, marked=True)
    from nerfocal.conll import read_conll

    sentences = list(read_conll(out))
    assert len(sentences) == 9 and len({s.document for s in sentences}) == 3


def test_limit_keeps_the_first_sentences_with_their_documents(tmp_path: Path) -> None:
    documents = context.split_documents(_file(tmp_path))
    cut = context.first_sentences(documents, 5)
    assert [sum(1 for line in d if line.strip()) for d in cut] == [3, 2]


def test_every_row_names_real_training_flags_and_keys_differ(tmp_path: Path) -> None:
    from nerfocal.config import parse_config

    args = SimpleNamespace(subset=0.05, limit=None, epochs=10.0, full_epochs=4.0, lr=1e-4)
    files = {split: tmp_path / f"{split}.txt" for split in ("train", "dev", "test")}
    keys = set()
    for dataset in ("conll2003", "wnut17"):
        for size, packing in ((0, "0"), (64, "0"), (64, "64"), (64, "64:13")):
            pack, batch = context.parse_packing(packing)
            for recipe in context.RECIPES:
                cmd = context.train_command(
                    dataset, size, recipe, 1, args, tmp_path / "out", files, (pack, batch)
                )
                flags = cmd[cmd.index("--model_name_or_path") :]
                _, data_cfg, _, train_args = parse_config(flags)
                assert (data_cfg.context_size, data_cfg.context_pack) == (size, pack)
                assert train_args.per_device_train_batch_size == batch
                assert data_cfg.train_file == str(files["train"])
                assert data_cfg.document_boundary == (None if dataset == "conll2003" else "sentence")
                keys.add(context.run_key(dataset, size, recipe, 1, args, (pack, batch)))
    assert len(keys) == 16
    # the runs before packing existed keep their keys (their records are reused)
    assert (
        context.run_key("conll2003", 64, "ce", 1, args) == "conll2003/s0.05/ctx64/ce/lr0.0001/seed1/ep10/l0"
    )


def test_the_wnut_control_is_met_only_when_every_size_gives_the_same_f1() -> None:
    def result(seed: int, f1: float) -> dict:
        return {"seed": seed, "test": {"f1": f1}}

    same = {(0, 0, 32, "ce"): [result(1, 0.3)], (64, 0, 32, "ce"): [result(1, 0.3)]}
    assert context.control_line(same).startswith("Control: met")
    other = {(0, 0, 32, "ce"): [result(1, 0.3)], (64, 0, 32, "ce"): [result(1, 0.31)]}
    assert "NOT met" in context.control_line(other) and "ce ctx 64 seed 1" in context.control_line(other)
    assert "not checked" in context.control_line({(64, 0, 32, "ce"): [result(1, 0.3)]})


def test_the_gain_over_context_0_is_taken_over_the_seeds_both_ran() -> None:
    def result(seed: int, f1: float) -> dict:
        return {"seed": seed, "test": {"f1": f1}}

    rows = {
        (0, 0, 32, "ce"): [result(1, 0.70), result(2, 0.74)],
        (64, 0, 32, "ce"): [result(1, 0.71), result(2, 0.76)],  # +1.0 and +2.0: +1.5
        (128, 0, 32, "ce"): [result(1, 0.69)],  # seed 1 only: -1.0 against 70, not -3.0 against 72
        (64, 64, 13, "default"): [result(1, 0.9)],  # no context-0 run of its recipe: left out
    }
    line = context.gains_line(rows)
    assert line.endswith("same recipe, over the seeds both ran: 64 `ce` +1.5; 128 `ce` -1.0 (seed 1).")
    assert context.gains_line({(0, 0, 32, "ce"): [result(1, 0.7)]}) == ""


def test_packed_rows_are_only_those_that_pack() -> None:
    assert context.packs(64, 64) and not context.packs(128, 64) and not context.packs(64, 0)


def test_planned_rows_keep_context_0_and_drop_unpacked_rows_only_when_asked() -> None:
    args = SimpleNamespace(sizes=[0, 64, 128], packs=["64:13"])
    assert context.planned_rows(args) == [(0, (0, 32)), (64, (0, 32)), (128, (0, 32)), (64, (64, 13))]
    args.packed_only = True
    assert context.planned_rows(args) == [(0, (0, 32)), (64, (64, 13))]


def test_the_full_set_table_has_its_own_section_beside_the_subset_one() -> None:
    assert context.section_name(SimpleNamespace(subset=0.05)) == "context"
    assert context.section_name(SimpleNamespace(subset=1.0)) == "context-full"


def test_context_pack_benchmark_reads_one_model_each_way(tmp_path: Path, monkeypatch) -> None:
    """benchmark.py context-pack on a tiny random model with context: one row per reading, F1 scored
    against the IOB1 gold, packing capped at the window's room, and context_pack 0 agreeing with itself."""
    import json

    import context_packing
    from fixtures import save_tiny_model

    model = save_tiny_model(tmp_path / "model", ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], max_length=64)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "nerfocal_context_size": 8}), encoding="utf-8")
    data = tmp_path / "conll"
    data.mkdir()
    words = ["paris", "anna", "the", "city", "of", "rome", "said", "berlin", "maria", "and"]
    blocks = []
    for d in range(4):
        blocks.append("-DOCSTART- -X- -X- O\n\n")
        for s in range(3):
            tokens = [words[(d + s + k) % len(words)] for k in range(4)]
            kinds = {"paris": "I-LOC", "rome": "I-LOC", "berlin": "I-LOC", "anna": "I-PER", "maria": "I-PER"}
            blocks.append("".join(f"{t} {kinds.get(t, 'O')}\n" for t in tokens) + "\n")
    (data / "test.txt").write_text("".join(blocks), encoding="utf-8")
    monkeypatch.setattr(context_packing, "DATASETS", {"conll2003": {"dir": data}})
    written: dict[str, str] = {}
    monkeypatch.setattr(context_packing, "write_section", lambda name, body: written.update({name: body}))
    context_packing.main(SimpleNamespace(model=str(model), packs=[0, 1000], limit=None, threads=1))
    rows = [
        line for line in written["context-pack"].splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert [r.split(" | ")[0] for r in rows[1:]] == [
        "| no context",
        "| context 8, `context_pack` 0",
        "| context 8, `context_pack` 46",  # 64 - 2 special tokens - 2 x 8
    ]
    assert rows[2].endswith("| 100.0% |")


def test_predict_speed_reads_the_test_file_as_training_read_it(tmp_path: Path, monkeypatch) -> None:
    """The WNUT-17 control's predict speed reads every tweet alone, as its training did (no context);
    CoNLL-2003 reads its documents (a file without -DOCSTART- is one document)."""
    import json

    from fixtures import save_tiny_model

    import nerfocal.predict as predict_module

    model = save_tiny_model(tmp_path / "model", ["O", "B-LOC", "I-LOC"], max_length=64)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "nerfocal_context_size": 8}), encoding="utf-8")
    sentences = [("paris", "said"), ("the", "city"), ("of", "rome")]
    test = tmp_path / "test.txt"
    test.write_text("".join("".join(f"{w} O\n" for w in s) + "\n" for s in sentences), encoding="utf-8")
    seen: list[tuple[str, ...]] = []
    original = predict_module.tokenize_windows

    def spy(tokenizer, lists, *args):  # type: ignore[no-untyped-def]
        seen.extend(map(tuple, lists))
        return original(tokenizer, lists, *args)

    monkeypatch.setattr(predict_module, "tokenize_windows", spy)
    speed = context.predict_speed(model, test, "wnut17", rounds=1)
    assert speed["sentences"] == 3 and speed["slower_than_no_context"] > 0
    assert set(seen) == set(sentences)  # each tweet alone, read with context or without
    seen.clear()
    context.predict_speed(model, test, "conll2003", rounds=1)
    # each sentence read with its neighbours, then (the no-context baseline, same process) alone
    assert set(seen) - set(sentences) and set(seen) & set(sentences) == set(sentences)


def test_force_retrains_over_the_metrics_files_a_finished_run_left(tmp_path: Path, monkeypatch) -> None:
    commands: list[list[str]] = []

    class Stop(Exception):
        pass

    def fake_run(cmd, log, env=None):  # type: ignore[no-untyped-def]
        commands.append(cmd)
        raise Stop

    monkeypatch.setattr(context, "run", fake_run)
    monkeypatch.setattr(context, "data_files", lambda *a: {s: tmp_path / s for s in ("train", "dev", "test")})
    for force in (False, True):
        args = SimpleNamespace(subset=1.0, limit=7, epochs=10.0, full_epochs=4.0, lr=1e-4, force=force)
        args.cached_only = False
        with pytest.raises(Stop):
            context.run_one("wnut17", 64, "default", 1, args, tmp_path)
    plain, forced = commands
    assert "--overwrite_output_dir" not in plain and forced[-2:] == ["--overwrite_output_dir", "true"]
