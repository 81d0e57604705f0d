"""Word-level error analysis of a run: predictions files, confusions, error kinds, calibration arrays.

A training run writes ``predictions_<split>.jsonl`` (one sentence per line: ``tokens``, ``gold``,
``pred`` tags and the ``confidence`` of each predicted tag) beside ``eval_results.json``; from those
files, ``nerfocal_config.yaml`` and ``trainer_state.json`` :func:`write_report` builds:

    * ``report.html``: self-contained, figures embedded as base64 PNG;
    * ``report.md`` with the figures in ``report/*.png`` (relative links).

Errors are read from entity spans (:func:`nerfocal.labels.tags_to_spans`, the conlleval chunking of
seqeval's default mode). Every false positive and false negative of seqeval is assigned to exactly
one kind, so the kinds' false positives and false negatives add up to seqeval's.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfocal.labels import OUTSIDE, split_tag, tags_to_spans

logger = logging.getLogger(__name__)

Span = tuple[str, int, int]  # (type, start, end), end exclusive, word indices

SECTIONS = (
    "Run configuration",
    "Scores",
    "Per-type F1",
    "Training curves",
    "Confusion matrix",
    "Reliability diagram",
    "Most frequent errors",
)
ERROR_KINDS = ("missed entity", "spurious entity", "wrong type", "wrong boundary", "wrong type and boundary")
CONFIG_KEYS = (
    "model_name_or_path",
    "train_file",
    "loss",
    "gamma",
    "alpha",
    "ce_warmup_steps",
    "ce_warmup_epochs",
    "temperature_scaling",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "seed",
)


@dataclass
class WordPredictions:
    """Word-level tags of one evaluated split; ``confidence[i][j]`` is None for a word never predicted."""

    tokens: list[list[str]]
    gold: list[list[str]]
    pred: list[list[str]]
    confidence: list[list[float | None]] | None = None


@dataclass
class ErrorCase:
    """One error: the sentence it is in, and the gold and/or predicted span it involves."""

    kind: str
    sentence: int
    gold: Span | None
    pred: Span | None

    @property
    def false_positives(self) -> int:
        return int(self.pred is not None)

    @property
    def false_negatives(self) -> int:
        return int(self.gold is not None)


# ---- predictions files -------------------------------------------------------------------------


def word_confidences(
    logits: np.ndarray,
    windows: Sequence[Any],
    sentences: Sequence[Any],
    temperature: float = 1.0,
    choices: np.ndarray | None = None,
) -> list[list[float | None]]:
    """Softmax probability of each word's predicted class at its first sub-word (as
    :func:`nerfocal.data.word_predictions`): the max probability, or that of ``choices``.

    Args:
        logits: float array ``[N, S, C]``, one row per window.
        windows: :class:`nerfocal.data.Window` per row.
        sentences: the sentences the windows come from.
        temperature: logits are divided by it before the softmax.
        choices: int array ``[N, S]``, the predicted class ids when they are not the argmax (``o_bias``).
    """
    from nerfocal.encode import flat_words

    flat, starts = flat_words(sentences, None)
    for k, (window, row) in enumerate(zip(windows, logits, strict=True)):
        z = np.asarray(row, dtype=np.float64)[window.first_subwords] / temperature  # [W, C]
        z = z - z.max(axis=-1, keepdims=True)
        picked: Any = 0.0
        if choices is not None:  # [W]: the chosen class's z
            picked = np.take_along_axis(z, choices[k][window.first_subwords, None], -1)[:, 0]
        confidence = np.exp(picked) / np.exp(z).sum(axis=-1)  # [W]; the max: exp(0) / sum
        first = starts[window.sentence_index] + window.word_offset  # may run on over the next sentences
        flat[first : first + len(window.first_subwords)] = confidence.tolist()
    return [flat[a:b] for a, b in itertools.pairwise(starts)]


def write_run_predictions(
    path: str | Path,
    logits: np.ndarray,
    windows: Sequence[Any],
    sentences: Sequence[Any],
    id2label: dict[int, str],
    temperature: float = 1.0,
    o_bias: float = 0.0,
) -> Path:
    """Write a training run's argmax predictions of one split as ``predictions_<split>.jsonl`` (``O``
    less ``o_bias`` in the argmax, as the run's scores; the confidences are the model's probabilities)."""
    from nerfocal.decision import shifted
    from nerfocal.decode import outside_id
    from nerfocal.encode import word_predictions

    decision = np.asarray(logits) / temperature
    if o_bias:
        decision = shifted(decision, outside_id([id2label[i] for i in range(len(id2label))]), o_bias)
    choices = decision.argmax(-1)  # [N, S]
    pred = word_predictions(windows, choices, sentences, id2label)
    words = WordPredictions(
        tokens=[list(s.tokens) for s in sentences],
        gold=[list(s.tags or []) for s in sentences],
        pred=pred,
        confidence=word_confidences(logits, windows, sentences, temperature, choices if o_bias else None),
    )
    return write_predictions(path, words)


def write_predictions(path: str | Path, words: WordPredictions) -> Path:
    from nerfocal.io import write_text

    lines = []
    for i, (tokens, gold, pred) in enumerate(zip(words.tokens, words.gold, words.pred, strict=True)):
        record: dict[str, Any] = {"tokens": tokens, "gold": gold, "pred": pred}
        if words.confidence is not None:
            record["confidence"] = [None if c is None else round(c, 6) for c in words.confidence[i]]
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_predictions(path: str | Path) -> WordPredictions:
    """Read a ``predictions_<split>.jsonl`` file; errors name ``path:line``."""
    words = WordPredictions([], [], [], [])
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                tokens, gold, pred = record["tokens"], record["gold"], record["pred"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{line_no}: expected tokens, gold and pred lists ({err})") from None
            if not len(tokens) == len(gold) == len(pred):
                raise ValueError(f"{path}:{line_no}: expected one gold and one predicted tag per token")
            words.tokens.append(tokens)
            words.gold.append(gold)
            words.pred.append(pred)
            confidence = record.get("confidence")
            if words.confidence is not None and isinstance(confidence, list):
                words.confidence.append(confidence)
            else:
                words.confidence = None
    return words


# ---- analysis ----------------------------------------------------------------------------------


def confusion_matrix(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> tuple[np.ndarray, list[str]]:
    """Word-level counts over entity types, prefixes dropped: ``(matrix [T, T], labels)``, ``O`` first.

    Rows are gold types, columns predicted types; the counts sum to the number of words.
    """
    pairs = Counter(
        (split_tag(g)[1] or OUTSIDE, split_tag(p)[1] or OUTSIDE)
        for gs, ps in zip(gold, pred, strict=True)
        for g, p in zip(gs, ps, strict=True)
    )
    labels = [OUTSIDE, *sorted({t for pair in pairs for t in pair} - {OUTSIDE})]
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (g, p), n in pairs.items():
        matrix[index[g], index[p]] = n
    return matrix, labels


def classify_errors(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> list[ErrorCase]:
    """Every entity-level error, each false positive and false negative in exactly one case.

    Per sentence, spans found in both are correct. Each remaining predicted span (in order) is paired
    with one overlapping remaining gold span, preferring the same type, then the largest overlap:
    same boundaries -> wrong type; same type -> wrong boundary; else wrong type and boundary. What
    stays unpaired is a spurious entity (prediction) or a missed entity (gold).
    """
    cases: list[ErrorCase] = []
    for i, (gs, ps) in enumerate(zip(gold, pred, strict=True)):
        gold_spans, pred_spans = set(tags_to_spans(gs)), set(tags_to_spans(ps))
        missed = sorted(gold_spans - pred_spans, key=lambda s: (s[1], s[2], s[0]))
        for p in sorted(pred_spans - gold_spans, key=lambda s: (s[1], s[2], s[0])):
            overlapping = [g for g in missed if g[1] < p[2] and p[1] < g[2]]
            if not overlapping:
                cases.append(ErrorCase("spurious entity", i, None, p))
                continue
            g = max(overlapping, key=lambda g: (g[0] == p[0], min(g[2], p[2]) - max(g[1], p[1]), -g[1]))
            missed.remove(g)
            if g[1:] == p[1:]:
                kind = "wrong type"
            else:
                kind = "wrong boundary" if g[0] == p[0] else "wrong type and boundary"
            cases.append(ErrorCase(kind, i, g, p))
        cases.extend(ErrorCase("missed entity", i, g, None) for g in missed)
    return sorted(cases, key=lambda c: (c.sentence, min(s[1] for s in (c.gold, c.pred) if s)))


def error_summary(cases: Sequence[ErrorCase]) -> dict[str, dict[str, Any]]:
    """Per kind (most frequent first): ``count``, ``false_positives``, ``false_negatives``, ``by_type``."""
    summary: dict[str, dict[str, Any]] = {}
    for kind in ERROR_KINDS:
        of_kind = [c for c in cases if c.kind == kind]
        by_type = Counter(
            f"{c.gold[0]} → {c.pred[0]}"
            if c.gold and c.pred and c.gold[0] != c.pred[0]
            else (c.gold or c.pred)[0]  # type: ignore[index]
            for c in of_kind
        )
        summary[kind] = {
            "count": len(of_kind),
            "false_positives": sum(c.false_positives for c in of_kind),
            "false_negatives": sum(c.false_negatives for c in of_kind),
            "by_type": dict(by_type.most_common()),
        }
    return dict(sorted(summary.items(), key=lambda item: -item[1]["count"]))


def reliability_arrays(words: WordPredictions) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence, correct)`` float/bool arrays ``[W]`` over the words that got a prediction."""
    confidence: list[float] = []
    correct: list[bool] = []
    for i, (gs, ps) in enumerate(zip(words.gold, words.pred, strict=True)):
        conf = words.confidence[i] if words.confidence is not None else [None] * len(gs)
        for g, p, c in zip(gs, ps, conf, strict=True):
            if c is not None:
                confidence.append(float(c))
                correct.append(g == p)
    return np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool)


def mark_spans(tokens: Sequence[str], spans: Sequence[Span], lo: int, hi: int) -> str:
    """``tokens[lo:hi]`` with each span written ``[words]TYPE``."""
    starts = {s[1]: s for s in spans}
    ends = {s[2] - 1: s for s in spans}
    out = []
    for j in range(lo, hi):
        word = tokens[j]
        if j in starts:
            word = "[" + word
        if j in ends:
            word = f"{word}]{ends[j][0]}"
        out.append(word)
    return ("… " if lo > 0 else "") + " ".join(out) + (" …" if hi < len(tokens) else "")


def error_example(words: WordPredictions, case: ErrorCase, context: int = 4) -> tuple[str, str]:
    """``(gold line, predicted line)`` around an error, entities bracketed."""
    involved = [s for s in (case.gold, case.pred) if s is not None]
    tokens = words.tokens[case.sentence]
    lo = max(0, min(s[1] for s in involved) - context)
    hi = min(len(tokens), max(s[2] for s in involved) + context)
    inside = [s for s in tags_to_spans(words.gold[case.sentence]) if s[1] < hi and s[2] > lo]
    gold = mark_spans(tokens, [s for s in inside if s[1] >= lo and s[2] <= hi], lo, hi)
    inside = [s for s in tags_to_spans(words.pred[case.sentence]) if s[1] < hi and s[2] > lo]
    pred = mark_spans(tokens, [s for s in inside if s[1] >= lo and s[2] <= hi], lo, hi)
    return gold, pred


# ---- the report --------------------------------------------------------------------------------


def default_split(run_dir: Path) -> str | None:
    """``test`` if the run has test predictions or scores, else ``validation``, else None."""
    results = read_json(run_dir / "eval_results.json") or {}
    for split in ("test", "validation"):
        if (run_dir / f"predictions_{split}.jsonl").is_file() or split in results:
            return split
    return None


def read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
