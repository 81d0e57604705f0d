"""The one evaluation module: training-run evaluation, ``nerfocal evaluate`` and the report's predictions.

* Inside a training run (:func:`evaluate_splits`, :func:`make_compute_metrics`): ``Trainer.predict`` over
  the encoded windows of each split, words rejoined, entities and calibration scored.
* On a saved model (:func:`evaluate_predictor`, :func:`predict_words`): a
  :class:`nerfocal.predict.Predictor` tags the labelled sentences, which are scored the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nerfocal.conll import Sentence
from nerfocal.encode import Window, word_predictions
from nerfocal.metrics import calibration_metrics, entity_metrics

logger = logging.getLogger("nerfocal")

if TYPE_CHECKING:
    from nerfocal.report.analysis import WordPredictions


def score_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    windows: Sequence[Window],
    sentences: Sequence[Sentence],
    id2label: dict[int, str],
    *,
    strict: bool = False,
    temperature: float = 1.0,
    o_bias: float = 0.0,
    viterbi: bool = False,
) -> tuple[dict[str, Any], list[list[str]]]:
    """Entity metrics of the argmax predictions plus token-level ECE/NLL.

    ``o_bias`` is taken off ``O``'s temperature-scaled logit before the argmax
    (:mod:`nerfocal.decision`); the calibration scores are of the model's own probabilities.
    ``viterbi``: also score the constrained Viterbi decoding ``nerfocal predict`` uses by default
    (``viterbi_f1``, ``viterbi_precision``, ``viterbi_recall``, ``viterbi_macro_f1``); the returned
    tags stay the argmax ones.

    Args:
        logits: float array ``[N, S, C]`` (one row per window, padded).
        labels: int array ``[N, S]``, IGNORE_INDEX where excluded (padding included).
        windows: where each row comes from (see :func:`nerfocal.data.encode_sentences`).
        sentences: the gold sentences.
        id2label: label names.

    Returns:
        ``(metrics, predicted tags per sentence)``.
    """
    decision = logits
    if o_bias:
        from nerfocal.decision import shifted
        from nerfocal.decode import outside_id

        outside = outside_id([id2label[i] for i in range(len(id2label))])
        decision = shifted(logits / temperature, outside, o_bias)
    preds = decision.argmax(-1)  # [N, S]
    tags = word_predictions(windows, preds, sentences, id2label)
    gold = [s.tags or [] for s in sentences]
    metrics = entity_metrics(gold, tags, strict=strict)
    metrics.update(calibration_metrics(logits, labels, temperature=temperature))
    if viterbi:
        scores = viterbi_metrics(logits, windows, sentences, id2label, temperature, o_bias, strict=strict)
        metrics.update({f"viterbi_{k}": scores[k] for k in ("precision", "recall", "f1", "macro_f1")})
    return metrics, tags


def viterbi_metrics(
    logits: np.ndarray,
    windows: Sequence[Window],
    sentences: Sequence[Sentence],
    id2label: dict[int, str],
    temperature: float = 1.0,
    o_bias: float = 0.0,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """Entity metrics of the constrained Viterbi decoding of window logits, as ``nerfocal predict``
    decodes: ``log_softmax(z / T)`` at each word's first sub-word, ``o_bias`` off ``O``; a word no
    window reads (the tail of a truncated sentence) is ``O``, as in :func:`word_predictions`."""
    import torch

    from nerfocal.decode import outside_id

    labels = [id2label[i] for i in range(len(id2label))]
    outside = outside_id(labels)
    # the read positions only ([W, C]), then the scores: the padded [N, S, C] array is never copied
    rows = np.repeat(np.arange(len(windows)), [len(w.first_subwords) for w in windows])
    cols = np.fromiter((j for w in windows for j in w.first_subwords), dtype=np.int64, count=len(rows))
    read = torch.as_tensor(np.asarray(logits)[rows, cols], dtype=torch.float32)
    log_probs = torch.log_softmax(read / temperature, -1)
    log_probs[:, outside] -= o_bias
    starts = np.cumsum([0, *(len(s.tokens) for s in sentences)])
    index = [
        int(starts[w.sentence_index]) + w.word_offset + n
        for w in windows
        for n in range(len(w.first_subwords))
    ]
    return viterbi_word_metrics(log_probs, index, sentences, labels, strict=strict)


def viterbi_word_metrics(
    log_probs: Any,
    word_index: Sequence[int],
    sentences: Sequence[Sentence],
    labels: Sequence[str],
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """Entity metrics of the constrained Viterbi decoding of word scores: ``log_probs[k]`` (``[W, C]``,
    a tensor) is the word at ``word_index[k]`` of the sentences laid end to end; a word with no row
    (no sub-word read: a truncated tail, a word the tokenizer drops) is ``O``."""
    import torch

    from nerfocal.decode import outside_id, viterbi_tags

    lengths = [len(s.tokens) for s in sentences]
    words = torch.full((sum(lengths), len(labels)), float("-inf"))
    words[:, outside_id(list(labels))] = 0.0
    words[torch.as_tensor(list(word_index), dtype=torch.long)] = log_probs
    pred = viterbi_tags(list(torch.split(words, lengths)), list(labels))
    return entity_metrics([s.tags or [] for s in sentences], pred, strict=strict)


def predict_logits(trainer: Any, features: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Run ``trainer.predict`` (distributed-safe: every row gathered once) -> ``(logits, labels)``."""
    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None  # those are for the dev set
    try:
        output = trainer.predict(features, metric_key_prefix="predict")
    finally:
        trainer.compute_metrics = compute_metrics
    logits = np.asarray(output.predictions, dtype=np.float32)
    return logits, np.asarray(output.label_ids)


def make_compute_metrics(
    windows: Sequence[Window], sentences: Sequence[Sentence], id2label: dict[int, str], strict: bool
) -> Any:
    """``compute_metrics`` for ``Trainer`` evaluations during training (dev F1 in the logs, argmax and
    constrained Viterbi: ``eval_f1``, ``eval_viterbi_f1``, ...)."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        metrics, _ = score_logits(
            np.asarray(eval_pred.predictions),
            np.asarray(eval_pred.label_ids),
            windows,
            sentences,
            id2label,
            strict=strict,
            viterbi=True,
        )
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    return compute_metrics


def evaluate_splits(
    trainer: Any,
    evals: dict[str, Any],
    id2label: dict[int, str],
    data_cfg: Any,
    loss_cfg: Any,
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray]], float, float]:
    """Predict every eval split once, fit the temperature and the ``O`` bias on dev, score with both.

    Returns:
        ``(metrics per split, raw (logits, labels) per split, temperature, o_bias)``.
    """
    from nerfocal.metrics import fit_temperature, temperature_fit_problem

    raw = {split: predict_logits(trainer, evaluated.features) for split, evaluated in evals.items()}
    temperature = 1.0
    if loss_cfg.temperature_scaling and "validation" in raw:
        problem = temperature_fit_problem(*raw["validation"])
        if problem:
            logger.warning("temperature scaling: skipped, T = 1: the dev set cannot identify T (%s)", problem)
        else:
            temperature = fit_temperature(*raw["validation"])
            logger.info("temperature scaling: T = %.4f (fitted on the dev set)", temperature)

    def score(split: str, **kwargs: Any) -> dict[str, Any]:
        logits, labels = raw[split]
        evaluated = evals[split]
        kwargs.setdefault("temperature", temperature)
        where = {"windows": evaluated.windows, "sentences": evaluated.sentences, "id2label": id2label}
        return score_logits(logits, labels, **where, strict=data_cfg.strict_metrics, **kwargs)[0]

    o_bias = choose_o_bias(loss_cfg.o_bias, raw, score)
    results: dict[str, Any] = {}
    for split in raw:
        metrics = score(split, o_bias=o_bias, viterbi=True)
        if loss_cfg.temperature_scaling:
            before = score(split, temperature=1.0)
            metrics["ece_before_temperature"] = before["ece"]
            metrics["nll_before_temperature"] = before["nll"]
            metrics["temperature"] = temperature
        if o_bias:
            without = score(split, viterbi=True)
            metrics.update(o_bias=o_bias, f1_without_o_bias=without["f1"])
            metrics["macro_f1_without_o_bias"] = without["macro_f1"]
            metrics["viterbi_f1_without_o_bias"] = without["viterbi_f1"]
            metrics["viterbi_macro_f1_without_o_bias"] = without["viterbi_macro_f1"]
        results[split] = metrics
    return results, raw, temperature, o_bias


def choose_o_bias(option: str, raw: dict[str, Any], score: Any) -> float:
    """The ``o_bias`` option's value: a number as is; ``auto`` fitted on the dev split's entity F1
    under constrained Viterbi, the decoding ``nerfocal predict`` uses by default (0 without a dev
    split, with a warning)."""
    from nerfocal.decision import fit_o_bias

    if option != "auto":
        return float(option)
    if "validation" not in raw:
        logger.warning("o_bias auto: no dev set to choose it on, so o_bias = 0")
        return 0.0
    bias, scores = fit_o_bias(lambda b: score("validation", o_bias=b, viterbi=True)["viterbi_f1"])
    without = scores.get(0.0, float("nan"))
    logger.info("o_bias auto: %g (dev entity F1 %.4f by Viterbi; %.4f without)", bias, scores[bias], without)
    if bias in (min(scores), max(scores)) and bias != 0:
        logger.warning(
            "o_bias auto: %g is the end of the searched range %g..%g: a value beyond it may score higher "
            "on dev (set o_bias to a number to try one)", bias, min(scores), max(scores),
        )  # fmt: skip
    return bias


def read_gold(path: str, data_format: str, encoding: str) -> tuple[list[list[str]], list[list[str]]]:
    """``(tokens, tags)`` per sentence of a labelled file."""
    sentences = read_labelled(path, data_format, encoding)
    return [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]


def read_labelled(
    path: str, data_format: str, encoding: str, document_boundary: str | None = None
) -> list[Sentence]:
    """The labelled sentences of a CoNLL or JSONL file, tags checked, with their ``document``."""
    from nerfocal.conll import read_conll, read_jsonl
    from nerfocal.labels import split_tag

    if data_format == "auto":
        data_format = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"
    if data_format == "jsonl":
        sentences = list(read_jsonl(path, encoding=encoding, require_tags=True))
    else:
        sentences = list(
            read_conll(path, tag_column=-1, encoding=encoding, document_boundary=document_boundary)
        )
    if not sentences:
        raise ValueError(f"{path}: no labelled sentences (the file is empty or only blank lines)")
    for s in sentences:
        for i, tag in enumerate(s.tags or []):
            try:
                split_tag(tag)
            except ValueError as err:
                line = s.line + i if data_format == "conll" else s.line  # CoNLL: one word per line
                raise ValueError(f"{path}:{line}: {err}") from None
    return sentences


def evaluate_predictor(
    predictor: Any,
    tokens: list[list[str]],
    gold: list[list[str]],
    scheme: str = "auto",
    strict: bool = False,
    progress: bool = False,
    documents: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Predict ``tokens`` and score against ``gold`` (converted from ``scheme`` to the model's scheme).

    ``documents``: the document of each sentence (``Sentence.document``), for the predictor's document
    context; None: every sentence alone. The gold tags never reach the predictor.
    """
    from tqdm import tqdm

    from nerfocal.labels import convert_tags, detect_scheme
    from nerfocal.metrics import entity_metrics
    from nerfocal.predict import Document

    source = detect_scheme(gold) if scheme == "auto" else scheme
    target = predictor.scheme
    converted = []
    for k, tags in enumerate(gold):
        try:
            converted.append(convert_tags(tags, source, target))
        except ValueError as err:  # e.g. an E-/S- tag with --tag-scheme IOB2
            raise ValueError(f"sentence {k + 1}: {err} (--tag-scheme {source})") from None
    gold = converted
    ids = documents if documents is not None else [None] * len(tokens)
    predictions = predictor.predict_documents(
        Document(words, document_id=d) for words, d in zip(tokens, ids, strict=True)
    )
    bar = tqdm(
        predictions, total=len(tokens), desc="evaluate", unit=" sent", file=sys.stderr, disable=not progress
    )
    pred = [p.tags for p in bar]
    metrics = dict(entity_metrics(gold, pred, strict=strict))
    metrics.update(
        n_sentences=len(gold),
        gold_scheme=source,
        model_scheme=target,
        decode=predictor.decode,
        mode="strict" if strict else "default",
        report=_report(gold, pred, strict, target),
    )
    return metrics


def _report(gold: list[list[str]], pred: list[list[str]], strict: bool, scheme: str) -> str:
    """seqeval's text report; strict mode scores exact chunks of the model's scheme."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, IOBES

    if all(tag == "O" for tags in (*gold, *pred) for tag in tags):  # seqeval has no table to print
        return "no entities in the gold tags nor in the predictions: every entity score is 0"
    if strict:
        strict_scheme = IOBES if scheme == "BIOES" else IOB2
        report = classification_report(
            gold, pred, digits=4, mode="strict", scheme=strict_scheme, zero_division=0
        )
    else:
        report = classification_report(gold, pred, digits=4, zero_division=0)
    return str(report)


def predict_words(
    predictor: Any,
    tokens: list[list[str]],
    gold: list[list[str]],
    documents: Sequence[str | None] | None = None,
) -> WordPredictions:
    """Run a :class:`nerfocal.predict.Predictor` over labelled sentences (gold in the model's scheme);
    ``documents`` as in :func:`evaluate_predictor`."""
    from nerfocal.predict import Document
    from nerfocal.report.analysis import WordPredictions

    pred: list[list[str]] = []
    confidence: list[list[float | None]] = []
    ids = documents if documents is not None else [None] * len(tokens)
    inputs = (Document(words, document_id=d) for words, d in zip(tokens, ids, strict=True))
    for prediction in predictor.predict_documents(inputs):
        pred.append(list(prediction.tags))
        confidence.append(list(prediction.scores))  # argmax decoding: the max probability
    return WordPredictions(tokens, gold, pred, confidence)
