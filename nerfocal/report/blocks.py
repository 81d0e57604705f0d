"""The report's sections as format-neutral blocks (headings, text, tables, images, code).

:func:`build_blocks` reads a run directory and draws the figures (PNG files in ``image_dir``, the
same bytes are embedded in the HTML). When matplotlib is missing the report keeps its tables and says
which figures are left out. Rendering is in :mod:`nerfocal.report.render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfocal.report.analysis import (
    CONFIG_KEYS,
    SECTIONS,
    WordPredictions,
    classify_errors,
    confusion_matrix,
    error_example,
    error_summary,
    read_json,
    reliability_arrays,
)


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    name: str  # file name in the image folder
    alt: str
    data: bytes = field(repr=False)


@dataclass
class Code:
    text: str
    summary: str = ""  # non-empty: folded under this summary


@dataclass
class Html:
    """Markup for the HTML page (highlighted entities); Markdown shows ``fallback`` instead."""

    html: str
    fallback: Table


Block = Heading | Text | Table | Image | Code | Html


def build_blocks(
    run: Path,
    image_dir: Path,
    split: str | None,
    words: WordPredictions | None,
    source: str | None,
    max_examples: int = 3,
) -> list[Block]:
    """Every section of :data:`nerfocal.report.SECTIONS`, in order, for the run in ``run``."""
    from nerfocal.metrics import entity_metrics, expected_calibration_error

    results = read_json(run / "eval_results.json") or {}
    state = read_json(run / "trainer_state.json")
    config_path = run / "nerfocal_config.yaml"
    if not (results or state or words is not None or config_path.is_file()):
        raise ValueError(
            f"{run}: nothing to report; expected eval_results.json, trainer_state.json or "
            "predictions_<split>.jsonl (a training output directory), or --data FILE"
        )
    order = {"validation": 0, "test": 1}
    scores = {
        k: v
        for k, v in sorted(results.items(), key=lambda kv: (order.get(kv[0], 2), kv[0]))
        if isinstance(v, dict) and "f1" in v
    }
    if words is not None and (source is not None or split not in scores):
        # predictions not from this run's evaluation (e.g. --data FILE): score them here
        split = source or split or "data"
        scores = {split: {**entity_metrics(words.gold, words.pred), "tokens": _n_words(words)}}
        confidence, correct = reliability_arrays(words)
        if len(confidence):
            scores[split]["ece"] = expected_calibration_error(confidence, correct)
    figures = _Figures(image_dir)
    blocks: list[Block] = [Heading(f"nerfocal report: {run.name or run}", 1)]
    if words is not None:
        blocks.append(Text(f"Word-level analysis on: {source or f'the {split} split'}."))
    blocks += _section_configuration(config_path)
    scored, chosen, chosen_name = _section_scores(scores, split)
    blocks += scored
    blocks += _section_per_type_figure(chosen, chosen_name, figures)
    blocks += _section_training_curves(state, figures)
    blocks += _section_confusion(words, figures)
    blocks += _section_calibration(words, figures)
    blocks += _section_errors(words, max_examples)
    if figures.missing:
        blocks.append(Text(f"Figures left out: {figures.missing}"))
    return blocks


_NO_WORDS = Text(
    "No word-level predictions: training writes predictions_<split>.jsonl; for a model directory run "
    "`nerfocal report DIR --data FILE`."
)


def _section_configuration(config_path: Path) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[0])]
    if config_path.is_file():
        import yaml

        text = config_path.read_text(encoding="utf-8")
        config = yaml.safe_load(text) or {}
        rows = [[key, _value(config[key])] for key in CONFIG_KEYS if config.get(key) not in (None, 0)]
        full = Code(text, "full configuration (nerfocal_config.yaml)")
        blocks += [Table(["option", "value"], rows), full]
    else:
        blocks.append(Text("No nerfocal_config.yaml in this directory."))
    return blocks


def _section_scores(
    scores: dict[str, Any], split: str | None
) -> tuple[list[Block], dict[str, Any] | None, str]:
    blocks: list[Block] = [Heading(SECTIONS[1])]
    if scores:
        blocks.append(Text("Entity-level seqeval scores and word-level accuracy and ECE, in percent."))
        header = ["split", "precision", "recall", "F1", "macro F1", "accuracy", "ECE", "NLL", "temperature"]
        rows = [
            [
                name,
                *(_pct(m.get(k)) for k in ("precision", "recall", "f1", "macro_f1", "accuracy", "ece")),
                _num(m.get("nll")),
                _num(m.get("temperature")),
            ]
            for name, m in scores.items()
        ]
        blocks.append(Table(header, rows))
    else:
        blocks.append(Text("No scores: eval_results.json is missing and no data was given."))
    chosen = scores.get(split or "") or next(iter(scores.values()), None)
    chosen_name = split if split in scores else next(iter(scores), "")
    if chosen and chosen.get("per_type"):
        per_type = chosen["per_type"]
        rows = [
            [t, _pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]), str(m["support"])]
            for t, m in sorted(per_type.items())
        ]
        rows.append(
            [
                "micro avg",
                _pct(chosen["precision"]),
                _pct(chosen["recall"]),
                _pct(chosen["f1"]),
                str(sum(m["support"] for m in per_type.values())),
            ]
        )
        blocks += [
            Heading(f"Per-type scores ({chosen_name})", 3),
            Table(["type", "P", "R", "F1", "support"], rows),
        ]
    return blocks, chosen, chosen_name


def _section_per_type_figure(
    chosen: dict[str, Any] | None, chosen_name: str, figures: _Figures
) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[2])]
    if chosen and chosen.get("per_type"):
        blocks += figures.draw(
            "per_type_f1",
            "F1 per entity type",
            "plot_per_type_f1",
            chosen["per_type"],
            title=f"F1 per entity type, {chosen_name} (support in brackets)",
        )
    else:
        blocks.append(Text("No per-type scores."))
    return blocks


def _chosen_metric(evaluation: dict[str, Any], best: Any) -> str:
    """``"by dev viterbi_f1 0.8123; "`` when the kept checkpoint was chosen by another metric than dev F1
    (the logged metric whose value is the state's ``best_metric``), else ``""``."""
    if not isinstance(best, (int, float)) or evaluation.get("eval_f1") == best:
        return ""
    names = [k for k, v in evaluation.items() if k.startswith("eval_") and v == best]
    return f"by dev {names[0].removeprefix('eval_')} {best:.4f}; " if names else ""


def _section_training_curves(state: Any, figures: _Figures) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[3])]
    if state and state.get("log_history"):
        best = state.get("best_global_step")
        kept = [h for h in state["log_history"] if h.get("step") == best and "eval_f1" in h]
        if best and kept:
            chosen = _chosen_metric(kept[0], state.get("best_metric"))
            blocks.append(
                Text(
                    f"Early stopping kept the checkpoint of step {best} (epoch {_num(kept[0].get('epoch'))}, "
                    f"{chosen}dev F1 {_pct(kept[0]['eval_f1'])}), starred on the dev-F1 curve."
                )
            )
        blocks += figures.draw(
            "training",
            "training curves",
            "plot_training",
            state["log_history"],
            best_step=best if kept else None,
        )
    else:
        blocks.append(Text("No trainer_state.json (log history) in this directory."))
    return blocks


def _section_confusion(words: WordPredictions | None, figures: _Figures) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[4])]
    if words is not None:
        matrix, labels = confusion_matrix(words.gold, words.pred)
        blocks.append(Text(f"{int(matrix.sum())} words; rows are gold types, columns predicted types."))
        blocks += figures.draw("confusion", "confusion matrix", "plot_confusion", matrix, labels)
        rows = [[f"**{g}**", *(str(int(n)) for n in row)] for g, row in zip(labels, matrix, strict=True)]
        blocks.append(Table(["gold \\ pred", *labels], rows))
    else:
        blocks.append(_NO_WORDS)
    return blocks


def _section_calibration(words: WordPredictions | None, figures: _Figures) -> list[Block]:
    from nerfocal.metrics import expected_calibration_error

    blocks: list[Block] = [Heading(SECTIONS[5])]
    calibration = reliability_arrays(words) if words is not None else None
    if calibration is not None and len(calibration[0]):
        confidence, correct = calibration
        ece = expected_calibration_error(confidence, correct)
        blocks.append(
            Text(f"{len(confidence)} words; word-level ECE {100 * ece:.2f}% (15 equal-width bins).")
        )
        blocks += figures.draw("reliability", "reliability diagram", "plot_reliability", confidence, correct)
    else:
        blocks.append(Text("No calibration data (per-word confidences) for this run."))
    return blocks


def _section_errors(words: WordPredictions | None, max_examples: int) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[6])]
    if words is not None:
        cases = classify_errors(words.gold, words.pred)
        summary = error_summary(cases)
        rows = [
            [
                kind,
                str(s["count"]),
                str(s["false_positives"]),
                str(s["false_negatives"]),
                ", ".join(f"{t} {n}" for t, n in list(s["by_type"].items())[:4]),
            ]
            for kind, s in summary.items()
        ]
        blocks.append(
            Text(
                f"{len(cases)} errors. Each seqeval false positive (FP) and false negative (FN) is in "
                "exactly one kind: a wrong type or boundary is one FP plus one FN."
            )
        )
        blocks.append(Table(["kind", "count", "FP", "FN", "most frequent"], rows))
        for kind, s in summary.items():
            examples = [c for c in cases if c.kind == kind][:max_examples]
            if examples:
                rows = [[_code(line) for line in error_example(words, c)] for c in examples]
                table = Table(["gold", "predicted"], rows)
                highlighted = "".join(_highlighted_example(words, c) for c in examples)
                blocks += [Heading(f"{kind} ({s['count']})", 3), Html(highlighted, table)]
    else:
        blocks.append(_NO_WORDS)
    return blocks


class _Figures:
    """Draws each figure once into the image folder; remembers why figures are missing."""

    def __init__(self, image_dir: Path) -> None:
        self.image_dir = image_dir
        self.missing = ""

    def draw(self, name: str, alt: str, function: str, *args: Any, **kwargs: Any) -> list[Block]:
        try:
            from nerfocal.report import plots

            data = getattr(plots, function)(*args, path=self.image_dir / f"{name}.png", **kwargs)
        except ModuleNotFoundError as err:
            self.missing = str(err)
            return [Text(f"({alt}: matplotlib is not installed)")]
        except ValueError as err:  # nothing to draw, e.g. a run too short to log a loss
            return [Text(f"({alt}: {err})")]
        return [Image(f"{name}.png", alt, data)]


def _highlighted_example(words: WordPredictions, case: Any, context: int = 4) -> str:
    """Gold and predicted entities around one error, highlighted as ``nerfocal predict --output-format
    html`` shows them (:func:`nerfocal.entities_html.side_by_side`)."""
    from nerfocal.entities_html import side_by_side, tag_entities

    involved = [s for s in (case.gold, case.pred) if s is not None]
    tokens = words.tokens[case.sentence]
    lo = max(0, min(s[1] for s in involved) - context)
    hi = min(len(tokens), max(s[2] for s in involved) + context)
    window = tokens[lo:hi]
    gold = tag_entities(window, _clip(words.gold[case.sentence][lo:hi]))
    pred = tag_entities(window, _clip(words.pred[case.sentence][lo:hi]))
    return side_by_side(window, gold, pred)


def _clip(tags: list[str]) -> list[str]:
    """A window's tags: an entity cut by the window's left edge starts there (``I-X`` -> ``B-X``)."""
    return [("B-" + t[2:]) if i == 0 and t.startswith(("I-", "E-")) else t for i, t in enumerate(tags)]


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _n_words(words: WordPredictions) -> int:
    return sum(len(g) for g in words.gold)


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else ""


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
