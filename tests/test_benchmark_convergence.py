"""The convergence benchmark's render step: tables and figures from a synthetic jsonl, nothing trained.

``benchmarks/`` is not a package; its modules are imported from that folder as in test_benchmarks.py.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from fixtures import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import benchmark
import common
import convergence
import convergence_plots
import convergence_table
import convergence_tune

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(dataset: str, row: str, seed: int, f1: float, *, lr: float = 1e-4, curve=None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    epochs = 4.0 if dataset == "conll2003" else 10.0
    curve = curve if curve is not None else [[1.0, f1 - 0.1], [2.0, f1], [3.0, f1 - 0.02]]
    test = {
        "f1": f1,
        "macro_f1": f1 / 2,
        "precision": f1,
        "recall": f1,
        "ece": 0.01,
        "per_type": {"LOC": {"f1": f1, "support": 50}, "MISC": {"f1": f1 / 4, "support": 3}},
    }
    return {
        "key": convergence._key(dataset, row, lr, seed, epochs),
        "dataset": dataset,
        "row": row,
        "lr": lr,
        "seed": seed,
        "epochs": epochs,
        "train": {"train_runtime": 100.0, "global_step": 30, "best_step": 20, "best_epoch": 2.0},
        "validation": {"f1": max(f for _, f in curve) if curve else f1},
        "test": test,
        "dev_curve": curve,
    }


def _args(**overrides: Any) -> SimpleNamespace:
    values = dict(
        datasets=list(convergence.SUBSETS),
        seeds=[1, 2, 3],
        rows=None,
        lrs=[1e-4, 2e-4],
        lr_ladder=[1e-4, 2e-4],
        widen=True,
        epochs=10.0,
        full_epochs=4.0,
        work_dir="unused",
        force=False,
        cached_only=True,
        tune_trials=12,
        tune_workers=1,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def no_kept_studies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The committed copies of the real studies stay out of these tests."""
    kept = tmp_path / "kept"
    monkeypatch.setattr(convergence_tune, "KEPT", kept)
    return kept


@pytest.fixture
def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A jsonl of partial results (full CoNLL-2003 absent, one seed for some rows), rendered in tmp_path."""
    records = [
        # reference at 1%, 5%, 25%: two seeds each; default at 1% and 5%; a normalised row at 1% only
        *[_record(d, "reference_ce", s, f) for d in ("conll2003_1", "conll2003_5", "conll2003_25")
          for s, f in ((1, 0.50), (2, 0.60))],
        _record("conll2003_1", "default", 1, 0.52),
        _record("conll2003_1", "default", 2, 0.62),
        _record("conll2003_5", "default", 1, 0.70),  # one seed at this size: no band there
        _record("conll2003_1", "focal_alpha_o_norm", 1, 0.40),
        # wnut17: lr 2e-4 loses on seed-1 dev F1, so its seed 2 must not enter the table
        _record("wnut17", "default", 1, 0.30, curve=[[1.0, 0.2], [2.0, 0.4], [3.0, 0.35], [4.0, 0.3]]),
        _record("wnut17", "default", 2, 0.40, lr=1e-4, curve=[[1.0, 0.25], [2.0, 0.45]]),
        _record("wnut17", "default", 1, 0.90, lr=2e-4, curve=[[1.0, 0.1], [2.0, 0.2]]),
        _record("wnut17", "default", 2, 0.90, lr=2e-4),
        _record("wnut17", "focal_alpha_auto_norm", 1, 0.33),
    ]  # fmt: skip
    results = tmp_path / "results" / "convergence.jsonl"
    results.parent.mkdir()
    results.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text("# Benchmarks\n\n<!-- convergence -->\nold\n<!-- /convergence -->\n", encoding="utf-8")
    monkeypatch.setattr(convergence, "RESULTS", results)
    monkeypatch.setattr(convergence, "IMG", tmp_path / "docs" / "img")
    monkeypatch.setattr(convergence, "DOC", doc)
    monkeypatch.setattr(common, "DOC", doc)

    def no_training(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a cached-only render must neither train nor read the data")

    monkeypatch.setattr(convergence, "run", no_training)
    monkeypatch.setattr(convergence, "subset_train_file", no_training)
    # the data files are absent: a cached-only render must not need them
    monkeypatch.setattr(common, "DATASETS", {"wnut17": {"dir": tmp_path / "absent", "tag_scheme": "IOB2"}})
    monkeypatch.setattr(
        sys, "argv", [str(ROOT / "benchmarks" / "benchmark.py"), "convergence", "--cached-only"]
    )
    assert benchmark.main(["convergence", "--cached-only", "--lrs", "1e-4", "2e-4"]) == 0
    return {"doc": doc, "img": tmp_path / "docs" / "img"}


def test_tables_give_the_seed_mean_and_std_of_the_cached_runs(rendered: dict[str, Path]) -> None:
    text = rendered["doc"].read_text(encoding="utf-8")
    assert "old" not in text and '<a id="accuracy-at-convergence"></a>' in text
    reference = convergence.ROWS["reference_ce"][0]
    default = convergence.ROWS["default"][0]
    # conll2003_1: reference 50 / 60 -> 55.0 ± 7.1; default 52 / 62 -> 57.0 ± 7.1; the rarest type is MISC
    assert "### conll2003_1" in text and "| F1 MISC |" in text
    assert f"| {reference} (`reference_ce`) | 0.0001 | 1,2 | 55.0 ± 7.1 | 27.5 ± 3.5 |" in text
    assert f"| {default} (`default`) | 0.0001 | 1,2 | 57.0 ± 7.1 |" in text
    assert "| 13.8 ± 1.8 | 1.0 ± 0.0 | 2.0 ± 0.0 | 67 |" in text  # MISC F1, ECE, best epoch, s to best
    # wnut17: lr 1e-4 wins on seed-1 dev F1 (0.40 against 0.20); the 90.0 runs at 2e-4 are left out
    wnut = text.split("### wnut17")[1].split("###")[0]
    assert f"| {default} (`default`) | 0.0001 | 1,2 | 35.0 ± 7.1 |" in wnut and "90.0" not in wnut
    assert (
        "| focal + prior init + alpha auto, normalised (`focal_alpha_auto_norm`) | 0.0001 | 1 | 33.0 |"
        in wnut
    )
    assert "### conll2003\n" not in text  # no run of the full set: no section, no crash


def test_a_row_on_fewer_seeds_is_compared_on_the_seeds_both_ran(rendered: dict[str, Path]) -> None:
    text = rendered["doc"].read_text(encoding="utf-8")
    # 5%: the reference ran seeds 1-2 (50, 60), the default seed 1 only (70): +20.0 on seed 1, not +15.0
    five = text.split("### conll2003_5")[1].split("###")[0]
    assert "default +20.0 (seed 1) F1 / +10.0 (seed 1) macro" in five
    # 1%: both ran seeds 1-2, so the comparison names no seeds
    one = text.split("### conll2003_1")[1].split("###")[0]
    assert "default +2.0 F1 / +1.0 macro" in one


def test_the_grid_line_gives_every_rate_run_on_seed_1_and_marks_the_choice(rendered: dict[str, Path]) -> None:
    text = rendered["doc"].read_text(encoding="utf-8")
    wnut = text.split("### wnut17")[1].split("###")[0]
    # seed-1 dev F1: 40.0 at 1e-4 (chosen), 20.0 at 2e-4; the alpha row ran 1e-4 only
    assert "Learning-rate grid, seed-1 dev F1" in wnut
    # a row whose best sits at its grid's edge, the ladder's next rate not run, says so (the parser's
    # default ladder goes down to 2.5e-5)
    assert "default **0.0001: 40.0**, 0.0002: 20.0 (at the grid's edge: 5e-05 not run);" in wnut
    assert "focal_alpha_auto_norm **0.0001: 33.0** (at the grid's edge: 0.0002 not run)." in wnut


def test_the_lr_grid_keeps_only_seed_1_runs_of_the_grid_at_the_protocol_epochs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    records = [
        _record("conll2003_5", "default", 1, 0.70, lr=1e-4),
        _record("conll2003_5", "default", 1, 0.80, lr=2e-4),
        _record("conll2003_5", "default", 2, 0.99, lr=3e-4),  # seed 2: not part of the grid
        _record("conll2003_5", "default", 1, 0.95, lr=5e-4),  # outside --lrs
        {**_record("conll2003_5", "default", 1, 0.97, lr=3e-4), "epochs": 20.0},  # another protocol
    ]
    records[-1]["key"] = convergence._key("conll2003_5", "default", 3e-4, 1, 20.0)
    monkeypatch.setattr(convergence, "load_results", lambda: {r["key"]: r for r in records})
    args = _args(lrs=[1e-4, 2e-4, 3e-4])
    scores = convergence.lr_grid("conll2003_5", "default", args, Path("unused"))
    assert scores == {1e-4: 0.70, 2e-4: 0.80}
    tuned = _record("conll2003_5", "tuned", 1, 0.90, lr=2.3e-4)  # its rate comes from the search
    by_row = {"default": records[:1], "tuned": [tuned]}
    grids = {("conll2003_5", "default"): scores, ("conll2003_5", "tuned"): {}}
    line = convergence_table.grid_line(
        "conll2003_5", by_row, {("conll2003_5", "default"): 2.0000000001e-4}, grids, args
    )
    assert line.endswith(
        "that a row lacks was not run for it): default 0.0001: 70.0, **0.0002: 80.0** "
        "(at the grid's edge: 0.0003 not run)."  # 3e-4 ran on seed 2 only: not part of the grid
    )
    assert convergence_table.grid_line("conll2003_5", {"tuned": [tuned]}, {}, grids, args) == ""


def test_next_rate_widens_a_grid_past_the_edge_its_best_rate_sits_on() -> None:
    ladder = [5e-5, 1e-4, 2e-4, 3e-4]
    assert convergence_table.next_rate({1e-4: 0.5, 2e-4: 0.6}, ladder) == 3e-4  # best at the top
    assert convergence_table.next_rate({1e-4: 0.6, 2e-4: 0.5}, ladder) == 5e-5  # best at the bottom
    assert convergence_table.next_rate({1e-4: 0.5, 2e-4: 0.6, 3e-4: 0.55}, ladder) is None  # inside
    assert convergence_table.next_rate({3e-4: 0.5}, ladder) == 2e-4  # alone at the ladder's top: go down
    assert convergence_table.next_rate({5e-5: 0.6, 1e-4: 0.5}, ladder) is None  # the ladder ends there
    assert convergence_table.next_rate({2e-4: 0.5}, [2e-4]) is None
    assert convergence_table.next_rate({2e-4: 0.5}, ladder) == 3e-4  # alone inside the ladder: up first
    assert convergence_table.next_rate({1e-4: 0.6, 2.0000000001e-4: 0.5}, ladder) == 5e-5  # a near-equal key


def test_the_convergence_command_widens_grids_unless_told_not_to() -> None:
    parse = benchmark.build_parser().parse_args
    assert parse(["convergence"]).widen is True
    assert parse(["convergence", "--no-widen"]).widen is False
    assert parse(["convergence", "--lr-ladder", "1e-4", "3e-4"]).lr_ladder == [1e-4, 3e-4]


def test_the_lr_grid_widens_until_its_best_rate_is_inside(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dev = {1e-4: 0.60, 2e-4: 0.65, 3e-4: 0.70, 5e-4: 0.72, 1e-3: 0.50}  # peaks at 5e-4
    trained: list[float] = []

    def fake_run_one(dataset, row, lr, seed, args, work, tuned=None):  # type: ignore[no-untyped-def]
        assert seed == 1
        if args.cached_only and lr not in (1e-4, 2e-4, 3e-4):
            return None  # not run yet
        trained.append(lr)
        return {"validation": {"f1": dev[lr]}}

    monkeypatch.setattr(convergence, "run_one", fake_run_one)
    ladder = [2.5e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3]
    args = _args(lrs=[1e-4, 2e-4, 3e-4], lr_ladder=ladder, cached_only=False)
    assert convergence.lr_grid("conll2003_1", "ce", args, Path("unused")) == dev
    assert trained == [1e-4, 2e-4, 3e-4, 5e-4, 1e-3]  # 5e-4 beat 3e-4, so 1e-3 ran, and lost
    trained.clear()
    scores = convergence.lr_grid("conll2003_1", "ce", _args(**{**vars(args), "widen": False}), Path("u"))
    assert sorted(scores) == [1e-4, 2e-4, 3e-4] and trained == [1e-4, 2e-4, 3e-4]
    # --cached-only: widening stops at the first rate that has not run, and the grid line says so
    cached = _args(**{**vars(args), "cached_only": True})
    scores = convergence.lr_grid("conll2003_1", "ce", cached, Path("u"))
    assert sorted(scores) == [1e-4, 2e-4, 3e-4]
    grids = {("conll2003_1", "ce"): scores}
    line = convergence_table.grid_line(
        "conll2003_1", {"ce": []}, {("conll2003_1", "ce"): 3e-4}, grids, cached
    )
    assert line.endswith("0.0001: 60.0, 0.0002: 65.0, **0.0003: 70.0** (at the grid's edge: 0.0005 not run).")


def test_against_names_the_seeds_unless_both_rows_ran_the_same_ones() -> None:
    def runs(*pairs: tuple[int, float]) -> list[dict[str, Any]]:
        return [{"seed": seed, "test": {"f1": f1}} for seed, f1 in pairs]

    reference = runs((1, 0.50), (2, 0.60))
    assert convergence_table.against(runs((1, 0.52), (2, 0.62)), reference, "f1") == "+2.0"
    assert convergence_table.against(runs((1, 0.70)), reference, "f1") == "+20.0 (seed 1)"
    # more seeds than the reference: compared on the shared ones, and says so
    assert (
        convergence_table.against(runs((1, 0.52), (2, 0.62), (3, 0.0)), reference, "f1") == "+2.0 (seeds 1,2)"
    )
    assert convergence_table.against(runs((3, 0.70)), reference, "f1") == "-"


def test_figures_are_written_and_linked(rendered: dict[str, Path]) -> None:
    text = rendered["doc"].read_text(encoding="utf-8")
    img = rendered["img"]
    names = ["convergence_learning_curve.png"] + [
        f"convergence_dev_f1_{d}.png" for d in ("wnut17", "conll2003_1", "conll2003_5", "conll2003_25")
    ]
    for name in names:
        data = (img / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC), name
        assert f"](img/{name})" in text, name
    assert not (img / "convergence_dev_f1_conll2003.png").exists()


def test_learning_curve_draws_only_rows_with_two_sizes(tmp_path: Path) -> None:
    table = {
        "conll2003_1": {
            "default": [_record("conll2003_1", "default", s, f) for s, f in ((1, 0.5), (2, 0.6))],
            "ce": [_record("conll2003_1", "ce", 1, 0.4)],
        },
        "conll2003": {"default": [_record("conll2003", "default", 1, 0.8)]},  # one seed: no band there
    }
    shares = {"conll2003_1": 0.01, "conll2003_5": 0.05, "conll2003": 1.0}  # 5%: no run at all
    assert convergence_plots.learning_curve(table, shares, tmp_path / "curve.png") == ["default"]
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG_MAGIC)
    lines = convergence_plots.write_figures(table, shares, tmp_path, tmp_path)
    assert (
        "![Test F1 against the share of the CoNLL-2003 training set](convergence_learning_curve.png)" in lines
    )
    with pytest.raises(convergence_plots.SkipFigure, match="two or more"):  # no row at two sizes
        convergence_plots.learning_curve({"conll2003_1": table["conll2003_1"]}, shares, tmp_path / "no.png")


def test_a_row_not_run_at_every_size_is_dashed_and_says_so(tmp_path: Path) -> None:
    styles = convergence_plots.line_styles({"default": [1.0, 5.0, 100.0], "ce": [1.0, 100.0]})
    assert styles == {"default": ("default", "-"), "ce": ("ce (dashed: not run at every size)", "--")}
    assert convergence_plots.line_styles({"a": [1.0, 5.0], "b": [5.0, 1.0]}) == {
        "a": ("a", "-"),
        "b": ("b", "-"),
    }
    # the figure draws those styles: capture the axes' lines instead of reading pixels
    drawn: dict[str, str] = {}

    def keep(fig: Any, path: Path) -> None:
        drawn.update({line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()})

    table = {
        "conll2003_1": {r: [_record("conll2003_1", r, 1, 0.5)] for r in ("default", "ce")},
        "conll2003_5": {"default": [_record("conll2003_5", "default", 1, 0.7)]},
        "conll2003": {r: [_record("conll2003", r, 1, 0.8)] for r in ("default", "ce")},
    }
    shares = {"conll2003_1": 0.01, "conll2003_5": 0.05, "conll2003": 1.0}
    with mock.patch("nerfocal.report.plots.save_png", keep):
        assert convergence_plots.learning_curve(table, shares, tmp_path / "c.png") == ["default", "ce"]
    assert drawn == {"default": "-", "ce (dashed: not run at every size)": "--"}


def test_a_point_from_fewer_seeds_is_hollow_and_the_legend_says_so(tmp_path: Path) -> None:
    drawn: list[tuple[str, list[float], str]] = []

    def keep(fig: Any, path: Path) -> None:
        drawn.extend(
            (line.get_label(), list(line.get_xdata()), str(line.get_markerfacecolor()))
            for line in fig.axes[0].get_lines()
        )

    def seeds(dataset: str, row: str, n: int) -> list[dict[str, Any]]:
        return [_record(dataset, row, s, 0.5 + 0.01 * s) for s in range(1, n + 1)]

    table = {  # ce has one seed at 25%
        d: {"default": seeds(d, "default", 3), "ce": seeds(d, "ce", 3 if d == "conll2003_1" else 1)}
        for d in ("conll2003_1", "conll2003_25")
    }
    shares = {"conll2003_1": 0.01, "conll2003_25": 0.25}
    with mock.patch("nerfocal.report.plots.save_png", keep):
        convergence_plots.learning_curve(table, shares, tmp_path / "c.png")
    labels = [label for label, _, _ in drawn]
    assert labels == ["default", "ce (hollow: under 3 seeds)", "_nolegend_"]
    assert drawn[2][1:] == ([25.0], "white")  # only the one-seed point is overdrawn hollow
    assert drawn[0][2] != "white"


def test_the_difference_panel_pairs_seeds_with_the_reference(tmp_path: Path) -> None:
    def runs(dataset: str, row: str, f1s: dict[int, float]) -> list[dict[str, Any]]:
        return [_record(dataset, row, s, f) for s, f in f1s.items()]

    # 1%: seeds 1-3 on both sides; 25%: the row has seed 3 only, which the reference lacks, and seed 2
    table = {
        "conll2003_1": {
            "reference_ce": runs("conll2003_1", "reference_ce", {1: 0.60, 2: 0.62, 3: 0.58}),
            "default": runs("conll2003_1", "default", {1: 0.63, 2: 0.63, 3: 0.62}),
        },
        "conll2003_25": {
            "reference_ce": runs("conll2003_25", "reference_ce", {1: 0.83, 2: 0.84}),
            "default": runs("conll2003_25", "default", {2: 0.845, 3: 0.99}),
        },
    }
    diff = convergence_plots.paired_difference(
        table["conll2003_1"]["default"], table["conll2003_1"]["reference_ce"]
    )
    assert diff is not None and diff[2] == 3
    assert diff[0] == pytest.approx((3.0 + 1.0 + 4.0) / 3) and diff[1] == pytest.approx(1.5275, abs=1e-4)
    only_two = convergence_plots.paired_difference(
        table["conll2003_25"]["default"], table["conll2003_25"]["reference_ce"]
    )
    assert only_two is not None and only_two[0] == pytest.approx(0.5) and only_two[1:] == (0.0, 1)
    assert convergence_plots.paired_difference(runs("x", "a", {3: 0.5}), runs("x", "b", {1: 0.5})) is None

    panels: list[list[tuple[str, list[float], list[float]]]] = []

    def keep(fig: Any, path: Path) -> None:
        panels.extend(
            [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]
            for ax in fig.axes
        )

    shares = {"conll2003_1": 0.01, "conll2003_25": 0.25}
    with mock.patch("nerfocal.report.plots.save_png", keep):
        convergence_plots.learning_curve(table, shares, tmp_path / "c.png")
    assert len(panels) == 2
    ((_, x, y),) = [line for line in panels[1] if line[0] == "default"]
    assert x == [1.0, 25.0] and y == pytest.approx([8.0 / 3, 0.5])
    hollow = [line for line in panels[1] if line[0] == "_nolegend_"]
    assert [line[1] for line in hollow] == [[25.0]]  # one paired seed at 25% against three at 1%
    panels.clear()
    no_reference = {d: {"default": by_row["default"]} for d, by_row in table.items()}
    with mock.patch("nerfocal.report.plots.save_png", keep):
        convergence_plots.learning_curve(no_reference, shares, tmp_path / "c.png")
    assert len(panels) == 1  # nothing to subtract: one panel


def test_dev_curves_draw_every_row_with_a_curve(tmp_path: Path) -> None:
    by_row = {
        "default": [_record("wnut17", "default", 1, 0.3)],
        "ce": [_record("wnut17", "ce", 1, 0.3, curve=[])],
        "reference_ce": [_record("wnut17", "reference_ce", s, 0.3) for s in (1, 2, 3)],
    }
    assert convergence_plots.dev_curves("wnut17", by_row, tmp_path / "dev.png") == ["default", "reference_ce"]


def test_a_figure_that_cannot_be_drawn_is_skipped_with_its_reason(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    table = {
        "wnut17": {"default": [_record("wnut17", "default", 1, 0.3, curve=[["x", "y"]])]},  # malformed curve
        "conll2003_1": {"default": [_record("conll2003_1", "default", 1, 0.5, curve=[])]},  # no curve
    }
    lines = convergence_plots.write_figures(table, {"conll2003_1": 0.01}, tmp_path, tmp_path)
    assert lines == []
    out = capsys.readouterr().out
    assert "figure convergence_learning_curve.png skipped: no row has test results at two or more" in out
    assert "figure convergence_dev_f1_wnut17.png skipped: ValueError" in out
    assert "figure convergence_dev_f1_conll2003_1.png skipped: no run of conll2003_1 has a dev curve" in out
    assert list(tmp_path.glob("*.png")) == []


def test_dev_curve_mean_uses_the_epochs_every_seed_reached() -> None:
    short = _record("wnut17", "default", 1, 0.3, curve=[[1.0, 0.2], [2.0, 0.4]])
    long = _record("wnut17", "default", 2, 0.3, curve=[[1.0, 0.4], [2.0, 0.6], [3.0, 0.9], [3.0, 0.1]])
    assert convergence_plots._curve(long) == {1.0: 0.4, 2.0: 0.6, 3.0: 0.9}  # the first value of an epoch
    curves = [convergence_plots._curve(r) for r in (short, long)]
    assert sorted(set.intersection(*(set(c) for c in curves))) == [1.0, 2.0]


def test_the_new_rows_use_the_alpha_normalization_option() -> None:
    from nerfocal.config import parse_config

    for row, alpha in (("focal_alpha_o_norm", 0.75), ("focal_alpha_auto_norm", "auto")):
        flags = convergence.ROWS[row][1]
        assert flags is not None
        loss = parse_config(["--output_dir", "/tmp/x", *flags])[2]
        assert loss.alpha == alpha and loss.alpha_normalization == "prior"


def test_no_finished_run_renders_the_header_and_no_figure(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(convergence, "IMG", tmp_path / "img")
    monkeypatch.setattr(convergence, "command_line", lambda: "python benchmarks/benchmark.py convergence")
    text = convergence.render({}, {}, _args())
    assert text.startswith('<a id="accuracy-at-convergence"></a>') and "### Figures" not in text
    assert "convergence_learning_curve.png skipped" in capsys.readouterr().out


def test_a_run_another_process_is_training_is_skipped_not_resumed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two processes sharing a work folder: the one that finds a run's lock held skips that run (no second
    resume or overwrite of its folder); the lock goes to the training command, so it outlives a killed
    orchestrator; a run finished by the other process while this one looked is read, not retrained."""
    import fcntl

    monkeypatch.setattr(convergence, "RESULTS", tmp_path / "results.jsonl")
    monkeypatch.setattr(convergence, "subset_train_file", lambda dataset, work: tmp_path / "train.txt")
    monkeypatch.setattr(convergence, "BUSY", set())
    held_by_command: list[bool] = []

    def fake_run(cmd: list[str], log: Path, env: Any = None, pass_fds: Any = ()) -> float:
        other = os.open(log.parent / ".lock", os.O_RDWR)
        try:  # the lock is held (by the descriptor handed to the command) while the command runs
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held_by_command.append(False)
        except BlockingIOError:
            held_by_command.append(len(pass_fds) == 1)
        finally:
            os.close(other)
        (log.parent / "eval_results.json").write_text(json.dumps({**_record("wnut17", "default", 1, 0.5)}))
        return 1.0

    monkeypatch.setattr(convergence, "run", fake_run)
    args = _args(cached_only=False, work_dir=str(tmp_path / "work"))
    out = tmp_path / "work" / convergence._key("wnut17", "default", 1e-4, 1, 10.0)
    (out / "checkpoint-40").mkdir(parents=True)
    (out / "checkpoint-40" / "trainer_state.json").write_text("{}")
    other = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)  # another process trains this run
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        assert convergence.run_one("wnut17", "default", 1e-4, 1, args, tmp_path / "work") is None
    finally:
        os.close(other)
    assert "another process is training it" in capsys.readouterr().out and not held_by_command
    assert sorted(convergence.BUSY) == [("wnut17", "default")]  # main gives that row no rate yet
    assert (out / "checkpoint-40" / "trainer_state.json").is_file()  # its folder untouched
    record = convergence.run_one("wnut17", "default", 1e-4, 1, args, tmp_path / "work")
    assert record is not None and record["resumed"] and held_by_command == [True]
    # the other process finished it between this one's first look and its lock: read, not retrained
    first = iter([{}, {record["key"]: record}])
    monkeypatch.setattr(convergence, "load_results", lambda: next(first))
    assert convergence.run_one("wnut17", "default", 1e-4, 1, args, tmp_path / "work") == record
    assert held_by_command == [True]


def test_the_run_lock_outlives_its_process_while_the_training_command_lives(tmp_path: Path) -> None:
    """The descriptor handed to the command keeps the lock after the process that took it lets go (an
    orchestrator killed while its training command runs on), and frees it when the command ends."""
    import subprocess

    with common.run_lock(tmp_path) as lock:
        assert lock is not None and len(lock) == 1
        command = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, pass_fds=lock
        )
    try:
        with common.run_lock(tmp_path) as again:
            assert again is None  # this process closed its descriptor; the command still holds the lock
    finally:
        command.communicate(b"")  # the command ends
    with common.run_lock(tmp_path) as after:
        assert after is not None


def test_a_grid_with_a_rate_training_elsewhere_chooses_nothing_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row whose grid lacks a rate that another process is training gets no rate (its seeds 2-3
    would otherwise train at a choice made on part of the grid); the other rows go on."""
    ran: list[tuple[str, float, int]] = []
    elsewhere = [True]

    def fake_run_one(dataset, row, lr, seed, args, work, tuned=None):  # type: ignore[no-untyped-def]
        if row == "default" and lr == 2e-4 and elsewhere[0]:
            convergence.BUSY.add((dataset, row))  # what run_one does when the run's lock is held
            return None
        ran.append((row, lr, seed))
        return _record(dataset, row, seed, 0.5 + lr, lr=lr)

    monkeypatch.setattr(convergence, "run_one", fake_run_one)
    monkeypatch.setattr(convergence, "BUSY", set())
    monkeypatch.setattr(convergence, "write_section", lambda *a, **k: None)
    monkeypatch.setattr(convergence, "IMG", tmp_path / "img")  # its figures: not the repo's
    args = _args(cached_only=False, datasets=["wnut17"], rows=["default", "ce"], lrs=[1e-4, 2e-4],
                 seeds=[1, 2], widen=False, work_dir=str(tmp_path / "work"))  # fmt: skip
    convergence.main(args)
    assert [r for r in ran if r[2] == 2] == [("ce", 2e-4, 2)]  # no seed 2 for default
    elsewhere[0] = False  # that process finished: a later call in the same process chooses again
    ran.clear()
    convergence.main(args)
    assert ("default", 2e-4, 2) in ran


@pytest.mark.parametrize(
    "row, resume_flags", [("reference_ce", ["--resume"]), ("default", ["--resume_from_checkpoint", "auto"])]
)
def test_an_interrupted_run_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: str, resume_flags: list[str]
) -> None:
    """A run killed mid-way (a session's end) continues from its latest epoch checkpoint; one killed before
    its first checkpoint starts afresh over its leftovers (nerfocal would refuse the used output_dir)."""
    monkeypatch.setattr(convergence, "RESULTS", tmp_path / "results.jsonl")
    monkeypatch.setattr(convergence, "subset_train_file", lambda dataset, work: tmp_path / "train.txt")
    commands: list[tuple[list[str], str]] = []

    def fake_run(cmd: list[str], log: Path, env: Any = None, pass_fds: Any = ()) -> float:
        commands.append((cmd, log.name))
        record = _record("wnut17", row, 1, 0.5)
        (log.parent / "eval_results.json").write_text(json.dumps({**record, "log_history": []}))
        return 1.0

    monkeypatch.setattr(convergence, "run", fake_run)
    args = _args(cached_only=False, work_dir=str(tmp_path / "work"))
    out = tmp_path / "work" / convergence._key("wnut17", row, 1e-4, 1, 10.0)
    (out / "checkpoint-40").mkdir(parents=True)
    (out / "checkpoint-40" / "trainer_state.json").write_text("{}")
    record = convergence.run_one("wnut17", row, 1e-4, 1, args, tmp_path / "work")
    assert record is not None and record["resumed"]
    cmd, log = commands[-1]
    assert cmd[-len(resume_flags) :] == resume_flags and log == "log_resumed.txt"
    assert math.isnan(convergence_table.time_to_best(record))  # time unknown
    assert convergence_table.mean_time_to_best([record]) == "-"
    known = {"train": {"train_runtime": 100.0, "best_step": 5, "global_step": 10}}
    assert convergence_table.mean_time_to_best([record, known]) == "50"  # the resumed run is left out
    (tmp_path / "results.jsonl").unlink()
    assert not (out / "checkpoint-40").exists()  # a finished run keeps its metrics only
    fresh = convergence.run_one("wnut17", row, 1e-4, 1, args, tmp_path / "work")
    assert fresh is not None and not fresh["resumed"]
    cmd, log = commands[-1]
    assert "--resume" not in cmd and "--resume_from_checkpoint" not in cmd and log == "log.txt"
    assert (cmd[-2:] == ["--overwrite_output_dir", "true"]) == (row != "reference_ce")


def _trial(number: int, value: float, **params: Any) -> SimpleNamespace:
    return SimpleNamespace(number=number, value=value, params=params, user_attrs={"train_seconds": 50.0})


def test_a_search_is_kept_in_the_repo_and_read_back_without_the_work_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_kept_studies: Path
) -> None:
    """After the search runs its study is copied to results/tune_DATASET; a fresh machine (no work
    folder) reads the trials from that copy, so its --cached-only render counts the same trials."""
    import optuna

    work = tmp_path / "work"

    def fake_search(cmd: list[str], log: Path, env: Any = None) -> float:
        """Resumes the study in --study-dir and finishes trials up to --trials (values 0.4, 0.6, 0.5)."""
        folder = Path(cmd[cmd.index("--study-dir") + 1])
        study = optuna.create_study(
            study_name="nerfocal", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize",
            load_if_exists=True,
        )  # fmt: skip
        for value in (0.4, 0.6, 0.5)[len(study.trials) : int(cmd[cmd.index("--trials") + 1])]:
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
        (folder / "trials.md").write_text(f"{len(study.trials)} trials\n", encoding="utf-8")
        return 1.0

    monkeypatch.setattr(convergence_tune, "run", fake_search)
    args = SimpleNamespace(cached_only=False, tune_trials=2, tune_workers=1)
    trials = convergence_tune.run_search("conll2003_5", "conll2003", tmp_path / "t.txt", 10, args, work)
    assert sorted(t.value for t in trials) == [0.4, 0.6]
    kept = no_kept_studies / "tune_conll2003_5"
    assert sorted(p.name for p in kept.iterdir()) == ["study.db", "trials.md"]  # no partial file left
    # the work folder gone (a fresh machine): the committed copy gives the same trials, nothing runs
    monkeypatch.setattr(convergence_tune, "run", lambda *a, **k: pytest.fail("the search ran again"))
    fresh = tmp_path / "fresh"
    cached = SimpleNamespace(cached_only=True, tune_trials=2, tune_workers=1)
    again = convergence_tune.run_search("conll2003_5", "conll2003", tmp_path / "t.txt", 10, cached, fresh)
    assert sorted(t.value for t in again) == [0.4, 0.6]
    assert convergence_tune.finished_trials(fresh, "wnut17") == []  # no study of that dataset anywhere
    # a longer search on the fresh machine resumes the kept study (2 trials kept, 1 more run), and the
    # kept copy follows it
    monkeypatch.setattr(convergence_tune, "run", fake_search)
    longer = SimpleNamespace(cached_only=False, tune_trials=3, tune_workers=1)
    resumed = convergence_tune.run_search("conll2003_5", "conll2003", tmp_path / "t.txt", 10, longer, fresh)
    assert sorted(t.value for t in resumed) == [0.4, 0.5, 0.6]
    assert (kept / "trials.md").read_text(encoding="utf-8") == "3 trials\n"
    monkeypatch.setattr(convergence_tune, "study_dir", lambda work, dataset: tmp_path / "gone")
    assert len(convergence_tune.finished_trials(fresh, "conll2003_5")) == 3  # read from the kept copy


def test_the_tuned_row_trains_the_best_trial_at_its_rate_and_keeps_the_search_for_cached_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search runs first (here: already finished), its best trial's settings train every seed at the
    trial's learning rate, the key names the trial, and a --cached-only render without the study still
    gives the row and the search's note (from the runs' records)."""
    results = tmp_path / "results.jsonl"
    records = [_record("wnut17", "default", 1, 0.45)]
    results.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    monkeypatch.setattr(convergence, "RESULTS", results)
    monkeypatch.setattr(convergence, "IMG", tmp_path / "img")
    monkeypatch.setattr(convergence, "write_section", lambda name, body: None)
    monkeypatch.setattr(convergence, "subset_train_file", lambda dataset, work: tmp_path / "train.txt")
    trials = [
        _trial(0, 0.50, learning_rate=2e-4, gamma=1.5),
        _trial(1, 0.61, learning_rate=5e-5, gamma=2.5, alpha=None),
    ]
    monkeypatch.setattr(convergence_tune, "finished_trials", lambda work, dataset: trials)
    commands: list[list[str]] = []

    def fake_run(cmd: list[str], log: Path, env: Any = None, pass_fds: Any = ()) -> float:
        commands.append(cmd)
        record = _record("wnut17", "tuned", 1, 0.5)
        (log.parent / "eval_results.json").write_text(json.dumps({**record, "log_history": []}))
        return 1.0

    monkeypatch.setattr(convergence, "run", fake_run)
    args = _args(cached_only=False, datasets=["wnut17"], rows=["tuned"], seeds=[1, 2], tune_trials=2,
                 work_dir=str(tmp_path / "work"))  # fmt: skip
    convergence.main(args)
    assert len(commands) == 2  # two seeds; the search was already complete, so no tune command
    for cmd in commands:
        assert cmd[cmd.index("--learning_rate") + 1] == "5e-05"
        assert cmd[cmd.index("--gamma") + 1] == "2.5" and cmd[cmd.index("--alpha") + 1] == "none"
    saved = convergence.load_results()
    assert sorted(k for k in saved if "tuned" in k) == [
        "wnut17/tuned@trial1/lr5e-05/seed1/ep10", "wnut17/tuned@trial1/lr5e-05/seed2/ep10"
    ]  # fmt: skip
    tune = saved["wnut17/tuned@trial1/lr5e-05/seed1/ep10"]["tune"]
    assert tune["search_seconds"] == 100.0 and tune["best_dev_f1"] == 0.61
    # cached-only, no study: the row and its note come from the records
    monkeypatch.setattr(convergence_tune, "finished_trials", lambda work, dataset: [])
    rendered: list[str] = []
    monkeypatch.setattr(convergence, "write_section", lambda name, body: rendered.append(body))
    # the tuned row named first still finds the default's grid for its note (it is processed last)
    convergence.main(_args(datasets=["wnut17"], rows=["tuned", "default"], seeds=[1, 2], tune_trials=2))
    text = rendered[-1]
    assert "(`tuned`) | 5e-05 | 1,2 |" in text
    assert "ran 2 trials" in text and "dev F1 61.0" in text and "against 45.0 for the default" in text
    assert "(+16.0)" in text
    # the default not among --rows: its grid is read from the runs that exist, nothing trained
    convergence.main(_args(datasets=["wnut17"], rows=["tuned"], seeds=[1, 2], tune_trials=2))
    assert "against 45.0 for the default" in rendered[-1]
    # a study that ended short of --tune-trials (a failed trial) after the row was trained: the records'
    # search still gives the row and its note
    monkeypatch.setattr(convergence_tune, "finished_trials", lambda work, dataset: trials[:1])
    convergence.main(_args(datasets=["wnut17"], rows=["default", "tuned"], seeds=[1, 2], tune_trials=3))
    assert "(`tuned`) | 5e-05 | 1,2 |" in rendered[-1] and "ran 2 trials" in rendered[-1]
    # cached-only in the middle of a search (1 of 2 trials) with no row trained yet: no best trial is
    # claimed, the note says how far the search is
    monkeypatch.setattr(convergence, "load_results", lambda: {r["key"]: r for r in records})
    convergence.main(_args(datasets=["wnut17"], rows=["default", "tuned"], seeds=[1, 2], tune_trials=2))
    text = rendered[-1]
    assert "(`tuned`)" not in text and "reached dev F1" not in text
    assert "`tuned` on wnut17: the search is under way, 1 of 2 trials finished (50 s of training)" in text
    assert len(commands) == 2  # none of these renders trained anything


def test_the_tune_command_keeps_the_protocol_and_never_passes_the_test_file() -> None:
    cmd = convergence_tune.tune_command("conll2003_1", "conll2003", Path("t.txt"), 10.0, 12, Path("w"))
    assert cmd[cmd.index("--trials") + 1] == "12" and cmd[cmd.index("--patience") + 1] == "2"
    assert cmd[cmd.index("--seed") + 1] == "1" and cmd[cmd.index("--train_file") + 1] == "t.txt"
    assert "--test_file" not in cmd and cmd[cmd.index("--study-dir") + 1] == str(Path("w/tune/conll2003_1"))
    assert cmd[cmd.index("--workers") + 1] == "1" and "--no-baseline" in cmd  # the tables' protocol
    cmd = convergence_tune.tune_command("wnut17", "wnut17", Path("t.txt"), 10.0, 12, Path("w"), workers=2)
    assert cmd[cmd.index("--workers") + 1] == "2"


def test_the_viterbi_column_and_comparison_need_every_seed_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convergence, "IMG", tmp_path / "img")

    def scored(record: dict[str, Any], f1: float) -> dict[str, Any]:
        record["test"].update(viterbi_f1=f1, viterbi_macro_f1=f1 / 2)
        return record

    table = {
        "wnut17": {
            "reference_ce": [scored(_record("wnut17", "reference_ce", s, 0.4), 0.42) for s in (1, 2)],
            "default": [scored(_record("wnut17", "default", s, 0.45), v) for s, v in ((1, 0.47), (2, 0.49))],
            # one seed scored before the column existed: no mean from the other alone
            "ce": [scored(_record("wnut17", "ce", 1, 0.4), 0.5), _record("wnut17", "ce", 2, 0.4)],
        }
    }
    text = convergence.render(table, {}, _args(datasets=["wnut17"]))
    lines = {line.split("(`")[1].split("`)")[0]: line for line in text.splitlines() if "(`" in line}
    assert lines["reference_ce"].endswith("| 42.0 ± 0.0 / 21.0 ± 0.0 |")
    assert lines["default"].endswith("| 48.0 ± 1.4 / 24.0 ± 0.7 |")
    assert lines["ce"].endswith("| - |")
    assert "F1 against the reference read the same way: default +6.0." in text
