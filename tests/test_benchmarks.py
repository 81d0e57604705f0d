"""The benchmark harness: the reference peer's recipe, the refusal without real data, the table logic.

The benchmarks themselves need ../shared/data and minutes per run; these tests pin the pieces that
decide whether their figures mean what docs/benchmarks.md says, on the tiny model and sample data.
"""

from __future__ import annotations

import json
import shutil
import sys
from types import SimpleNamespace

import pytest
from fixtures import LABELS, ROOT, SAMPLE, build_tiny_model

sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy
import common
import reference


def _result(f1: float, seed: int, rare_f1: float = 0.0) -> dict:
    test = {"f1": f1, "macro_f1": f1 / 2, "ece": 0.01, "per_type": {"X": {"f1": rare_f1}}}
    return {"seed": seed, "test": test, "validation": {"f1": f1}, "train": {"train_runtime": 1.0}}


def test_refuses_without_the_real_data(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DATASETS", {"wnut17": {"dir": tmp_path / "absent", "tag_scheme": "IOB2"}})
    with pytest.raises(SystemExit) as err:
        common.require_shared_data()
    assert "wnut17 missing" in str(err.value) and "../shared/data" in str(err.value)


def test_reference_labels_only_the_first_sub_word(tiny_tokenizer):
    from nerfocal.conll import Sentence

    label2id = {"O": 0, "B-PER": 1, "I-PER": 2}
    sentence = Sentence(tokens=["Zyxwvutsrq", "met", "Ann"], tags=["B-PER", "O", "B-PER"])
    features, firsts = reference.tokenize_and_align([sentence], tiny_tokenizer, label2id, 64)
    word_ids = tiny_tokenizer([sentence.tokens], is_split_into_words=True).word_ids(0)
    assert word_ids.count(0) > 1, "the test word must split into several sub-words"
    labels = features[0]["labels"]
    for j, w in enumerate(word_ids):
        if w is None or (j > 0 and word_ids[j - 1] == w):
            assert labels[j] == -100
        else:
            assert labels[j] == label2id[sentence.tags[w]] and firsts[0][w] == j


def test_reference_runs_end_to_end_and_scores_every_gold_word(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(SAMPLE / f"{split}.conll", data / f"{split}.txt")
    model = build_tiny_model(tmp_path / "model", labels=LABELS)  # the sample's 9 tags
    out = tmp_path / "out"
    args = ["--data-dir", str(data), "--model", str(model), "--output-dir", str(out)]
    assert reference.main([*args, "--max-steps", "2", "--batch-size", "8", "--seed", "3"]) in (0, None)
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) >= {"train", "validation", "test"}
    assert results["train"]["num_input_tokens_seen"] > 0
    for split in ("validation", "test"):
        assert 0.0 <= results[split]["f1"] <= 1.0
        assert "per_type" in results[split] and "ece" in results[split]
        assert 0.0 <= results[split]["viterbi_f1"] <= 1.0


def test_reference_viterbi_scores_decode_the_first_sub_words_and_tag_unread_words_o():
    import numpy as np

    from nerfocal.conll import Sentence

    labels = ["O", "B-PER", "I-PER"]
    sentence = Sentence(["Anna", "Novak", "spoke"], ["B-PER", "I-PER", "O"])
    # position 0: [CLS]; "Anna" at 1 (argmax I-PER, an invalid start), "Novak" at 3; "spoke" unread
    probs = [[0.8, 0.1, 0.1], [0.1, 0.4, 0.5], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]]
    logits = np.log(np.array([probs], dtype=np.float32))
    scores = reference.viterbi_scores(logits, [{0: 1, 1: 3}], [sentence], labels)
    assert scores["f1"] == 1.0 and scores["precision"] == 1.0
    unread_entity = Sentence(["Anna", "Novak", "Smith"], ["B-PER", "I-PER", "I-PER"])
    assert reference.viterbi_scores(logits, [{0: 1, 1: 3}], [unread_entity], labels)["f1"] == 0.0


def test_run_one_reuses_cached_runs_and_skips_missing_ones(tmp_path):
    args = SimpleNamespace(force=False, cached_only=True)
    assert accuracy.run_one("focal", "wnut17", 2, args, tmp_path) is None
    out = tmp_path / "wnut17" / "focal" / "seed2"
    out.mkdir(parents=True)
    (out / "eval_results.json").write_text(json.dumps(_result(0.3, 0)))
    loaded = accuracy.run_one("focal", "wnut17", 2, args, tmp_path)
    assert loaded is not None and loaded["seed"] == 2 and loaded["test"]["f1"] == 0.3


def test_mean_std_gives_mean_and_sample_std_in_percent():
    assert common.mean_std([]) == "-"
    assert common.mean_std([0.3]) == "30.0"
    assert common.mean_std([0.2, 0.3, 0.4]) == "30.0 ± 10.0"
    assert common.mean_std([4.0, 6.0], scale=1.0) == "5.0 ± 1.4"  # epochs: no percent
    assert common.mean_std([0.123456], digits=2) == "12.35"


def test_verdict_wnut_needs_plus_two_on_the_means():
    ref = [_result(0.20, s) for s in (1, 2, 3)]
    near = {"reference_ce": ref, "focal": [_result(f, s) for f, s in ((0.21, 1), (0.22, 2), (0.224, 3))]}
    far = {"reference_ce": ref, "focal": [_result(f, s) for f, s in ((0.25, 1), (0.22, 2), (0.23, 3))]}
    near_line, far_line = accuracy._verdict("wnut17", near)[0], accuracy._verdict("wnut17", far)[0]
    assert "+1.8 F1" in near_line and "(NOT met)" in near_line
    assert "+3.3 F1" in far_line and "(met)" in far_line


def test_verdict_conll_compares_with_the_reference_seed_std():
    ref = [_result(f, s) for f, s in ((0.80, 1), (0.82, 2), (0.84, 3))]  # std 2.0
    within = {"reference_ce": ref, "focal_prior": [_result(0.805, s) for s in (1, 2, 3)]}
    outside = {"reference_ce": ref, "focal_prior": [_result(0.79, s) for s in (1, 2, 3)]}
    assert "std of 2.0 (met)" in accuracy._verdict("conll2003", within)[0]
    assert "std of 2.0 (NOT met)" in accuracy._verdict("conll2003", outside)[0]
    one_seed = {"reference_ce": ref[:1], "focal_prior": [_result(0.9, 1)]}
    assert "not established" in accuracy._verdict("conll2003", one_seed)[0]
    assert accuracy._verdict("conll2003", {"focal_prior": ref}) == []
    better_ce = {**within, "ce": [_result(0.95, s) for s in (1, 2, 3)]}  # not a focal row: not a candidate
    assert "focal + prior init**, 80.5" in accuracy._verdict("conll2003", better_ce)[0]


def test_every_row_names_real_training_flags():
    from nerfocal.config import parse_config

    for _description, flags in accuracy.ROWS.values():
        if flags is None:
            continue
        parse_config(["--output_dir", "/tmp/x", "--model_name_or_path", "m", *flags])


def _load(texts_per_s: float, errors: int = 0, refused: dict | None = None) -> dict:
    return {
        "clients": 32,
        "seconds": 60.2,
        "requests": 1000,
        "good_requests": 900,
        "texts_per_s": texts_per_s,
        "p50_ms": 80.0,
        "p99_ms": 300.0,
        "errors": errors,
        "refused_as_expected": refused or {},
        "server_batches": {"batches": 100, "documents": 900, "largest": 31, "model_seconds": 54.18},
        "server_exit_status": 0,
        "server_cpu_cores": 1.5,
        "client_cpu_cores": 0.05,
    }


@pytest.mark.parametrize(("served", "verdict"), [(75.0, "**75%**, met"), (60.0, "**60%**, not met")])
def test_serve_section_compares_the_server_with_the_predictor(served, verdict):
    import serve_bench

    results = {
        "sentences": 3453,
        "model": "m",
        "command": "c",
        "machine": "x",
        "predictor": {"sentences_per_s": 100.0, "threads": 2},
        "predictor_packed": {"sentences_per_s": 101.0, "threads": 2},
        "good": _load(served),
        "mixed": _load(50.0, errors=1, refused={"bad_json": 3, "too_large_body": 2}),
        "padded": _load(40.0),
    }
    text = serve_bench.render(results, SimpleNamespace(bad_fraction=0.2))
    assert verdict in text
    assert f"| {served:.0f} | {served / 100:.2f}x | 80 | 300 | 900 | 0 | 1.5 / 0.05 |" in text
    assert "| `Predictor` in-process, packed (`pack=True`) | 101 | 1.01x |" in text
    assert "`nerfocal serve --no-pack`, 32 clients, good requests only, 60 s | 40 | 0.40x |" in text
    assert "5 bad requests" in text and "bad_json 3" in text and "too_large_body 2" in text
    assert "**1** in the three runs" in text and "the model was busy 90% of the run" in text


def test_workers_section_says_when_the_outputs_differ():
    import predict_workers

    runs = {1: {"seconds": 10.0, "sentences_per_s": 345.0, "threads": 2}}
    runs[2] = {"seconds": 8.0, "sentences_per_s": 431.0, "threads": 1}
    results = {
        "runs": runs,
        "sentences": 3453,
        "model": "m",
        "chunk_size": 256,
        "command": "c",
        "machine": "x",
    }
    text = predict_workers.render({**results, "identical": True})
    assert "| 2 | 1 | 8.0 | 431 | 1.25x |" in text and "**byte-identical**" in text
    assert "**NOT identical**" in predict_workers.render({**results, "identical": False})
