"""The README's convergence table is written by hand (the benchmark renders docs/benchmarks.md only):
each row must quote the learning rates the benchmark chose (each row's best seed-1 dev F1 over the
rates run) and, at those rates, the figures ``benchmarks/results/convergence.jsonl`` gives, rounded as
the benchmark rounds, so that a hand-copied, stale or mis-rounded number fails here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from fixtures import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import benchmark
import convergence
import convergence_table
import convergence_tune
from common import mean_std


def readme_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- convergence-readme -->")[1].split("<!-- /convergence-readme -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    return [r for r in rows[2:] if r]  # past the header and its rule


def dataset_of(label: str) -> str:
    if "WNUT-17" in label:
        return "wnut17"
    if share := re.search(r"(\d+)% of the training", label):
        return f"conll2003_{share.group(1)}"
    assert "full" in label, f"README convergence row names no dataset: {label}"
    return "conll2003"


def test_the_readme_table_has_every_dataset() -> None:
    expected = ["conll2003", "conll2003_1", "conll2003_25", "conll2003_5", "wnut17"]
    assert sorted(dataset_of(r[0]) for r in readme_rows()) == expected


@pytest.mark.parametrize("row", readme_rows(), ids=lambda r: dataset_of(r[0]))
def test_readme_convergence_row_matches_the_runs(row: list[str], tmp_path: Path) -> None:
    label, reference_cell, default_cell, difference = row
    dataset = dataset_of(label)
    rates = re.search(r"lr ([0-9.e-]+)(?: / ([0-9.e-]+))?", label)
    assert rates, f"README convergence row gives no learning rate: {label}"
    quoted = {"reference_ce": float(rates.group(1)), "default": float(rates.group(2) or rates.group(1))}
    # the benchmark's own choice: its grid read from the runs (--cached-only trains nothing)
    ladder = ["2.5e-5", "5e-5", "1e-4", "2e-4", "3e-4", "5e-4", "1e-3"]
    flags = ["convergence", "--cached-only", "--work-dir", str(tmp_path), "--lrs", *ladder]
    args = benchmark.build_parser().parse_args(flags)
    for name, lr in quoted.items():
        scores = convergence.lr_grid(dataset, name, args, tmp_path)
        assert lr == max(scores, key=lambda r: scores[r]), f"{label}: {name} chose another rate"
    done = convergence.load_results()
    epochs = convergence._epochs(dataset, args)
    runs = {
        name: [done[convergence._key(dataset, name, lr, seed, epochs)] for seed in (1, 2, 3)]
        for name, lr in quoted.items()
    }
    for name, cell in (("reference_ce", reference_cell), ("default", default_cell)):
        tests = [r["test"] for r in runs[name]]
        expected = f"{mean_std([t['f1'] for t in tests])} / {mean_std([t['macro_f1'] for t in tests])}"
        assert cell == expected, f"{label}, {name}"
    gains = [convergence_table.against(runs["default"], runs["reference_ce"], f) for f in ("f1", "macro_f1")]
    assert difference == f"**{' / '.join(gains)}**", label


def test_readme_best_epoch_sentence_matches_the_runs(tmp_path: Path) -> None:
    """'What runs when you set nothing' quotes the range of best dev epochs and how often the last epoch
    won, over the seven rows at their chosen rates (the tuned row at its search's best) on WNUT-17 and
    the CoNLL-2003 subsets: those counts come from the runs, like the table's."""
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    quoted = re.search(
        r"best dev epoch ranged from (\d+) to (\d+) on WNUT-17 and from (\d+) to (\d+) on the CoNLL-2003 "
        r"subsets \(epoch 10 in (\d+) of (\d+) runs",
        text,
    )
    assert quoted, "README: the best-epoch sentence is gone or reworded; update this test with it"
    ladder = ["2.5e-5", "5e-5", "1e-4", "2e-4", "3e-4", "5e-4", "1e-3"]
    flags = ["convergence", "--cached-only", "--work-dir", str(tmp_path), "--lrs", *ladder]
    args = benchmark.build_parser().parse_args(flags)
    done = convergence.load_results()
    epochs: dict[str, list[int]] = {}
    for dataset in ("wnut17", "conll2003_1", "conll2003_5", "conll2003_25"):
        rows = ["reference_ce", "ce", "focal", "default", "focal_alpha_o", "focal_alpha_auto"]
        keys = []
        for name in rows:
            scores = convergence.lr_grid(dataset, name, args, tmp_path)
            keys.append((name, max(scores, key=lambda r: scores[r])))
        search = convergence_tune.from_results([r for r in done.values() if r["dataset"] == dataset])
        assert search is not None, f"{dataset}: no tuned row"
        keys.append((f"tuned@trial{search['best_trial']}", search["params"]["learning_rate"]))
        ep = convergence._epochs(dataset, args)
        runs = [done[convergence._key(dataset, name, lr, s, ep)] for name, lr in keys for s in (1, 2, 3)]
        epochs[dataset] = [round(r["train"]["best_epoch"]) for r in runs]
    wnut = epochs.pop("wnut17")
    subsets = [e for values in epochs.values() for e in values]
    every = wnut + subsets
    measured = (min(wnut), max(wnut), min(subsets), max(subsets), every.count(10), len(every))
    assert tuple(int(g) for g in quoted.groups()) == measured
