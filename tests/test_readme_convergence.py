"""The README's convergence table is written by hand (the benchmark renders docs/benchmarks.md only):
every figure in it must be what ``benchmarks/results/convergence.jsonl`` gives, rounded as the
benchmark rounds, so that a hand-copied or mis-rounded number fails here."""

from __future__ import annotations

import re
import sys

import pytest
from fixtures import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import convergence
import convergence_table
from common import mean_std

# "25%" before "5%", which it contains
DATASETS = {"WNUT-17": "wnut17", "25%": "conll2003_25", "5%": "conll2003_5", "1%": "conll2003_1"}


def readme_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- convergence-readme -->")[1].split("<!-- /convergence-readme -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    return [r for r in rows[2:] if r]  # past the header and its rule


def dataset_of(label: str) -> str:
    for needle, dataset in DATASETS.items():
        if needle in label:
            return dataset
    assert "full" in label, f"README convergence row names no dataset: {label}"
    return "conll2003"


def test_the_readme_table_has_every_dataset() -> None:
    assert sorted(dataset_of(r[0]) for r in readme_rows()) == sorted([*DATASETS.values(), "conll2003"])


@pytest.mark.parametrize("row", readme_rows(), ids=lambda r: r[0].split(",")[0][:40])
def test_readme_convergence_row_matches_the_runs(row: list[str]) -> None:
    label, reference_cell, default_cell, difference = row
    dataset = dataset_of(label)
    rates = re.search(r"lr ([0-9.e-]+)(?: / ([0-9.e-]+))?", label)
    assert rates, f"README convergence row gives no learning rate: {label}"
    lr_reference = float(rates.group(1))
    lr_default = float(rates.group(2) or rates.group(1))
    done = convergence.load_results()
    epochs = 4 if dataset == "conll2003" else 10
    runs = {
        name: [done[convergence._key(dataset, name, lr, seed, epochs)] for seed in (1, 2, 3)]
        for name, lr in (("reference_ce", lr_reference), ("default", lr_default))
    }
    for name, cell in (("reference_ce", reference_cell), ("default", default_cell)):
        tests = [r["test"] for r in runs[name]]
        expected = f"{mean_std([t['f1'] for t in tests])} / {mean_std([t['macro_f1'] for t in tests])}"
        assert cell == expected, f"{label}, {name}"
    gains = [convergence_table.against(runs["default"], runs["reference_ce"], f) for f in ("f1", "macro_f1")]
    expected = " / ".join(gains)
    assert difference == f"**{expected}**", label
