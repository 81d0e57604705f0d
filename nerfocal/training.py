"""The training pipeline as library functions: prepare the data, build the model and trainer, train,
evaluate, save the artefacts. ``nerfocal train`` (:mod:`nerfocal.cli.train`) only parses options and
calls :func:`train`; a notebook can call each step on its own::

    from nerfocal import parse_config, train
    result = train(*parse_config(["configs/sample.yaml", "--num_train_epochs", "1"]))
    result.metrics["test"]["f1"]

Data flow of one run: :func:`nerfocal.data.load_ner_data` (words and tags per split) ->
:func:`prepare_data` (sub-word features per split, label counts of the encoded training positions) ->
:func:`build_model` (fresh head, prior bias init) -> :func:`build_trainer` (:class:`FocalLossTrainer`,
early stopping, signal handling) -> ``trainer.train`` -> :func:`save_run` (model, dev/test evaluation
with the fitted temperature, config, reports).
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfocal.conll import Sentence
from nerfocal.encode import DataStats, Window
from nerfocal.hub import push_if_asked  # re-exported: the last step of save_run

logger = logging.getLogger("nerfocal")

__all__ = [
    "EvalSplit",
    "PreparedData",
    "TrainResult",
    "build_model",
    "build_trainer",
    "feature_label_counts",
    "prepare_data",
    "save_run",
    "train",
]


@dataclass
class EvalSplit:
    """An evaluation split, encoded: model inputs, where each row comes from, the gold sentences."""

    features: list[dict[str, Any]]
    windows: list[Window]
    sentences: list[Sentence]
    stats: DataStats


@dataclass
class PreparedData:
    """Everything a run needs from the data: labels, scheme, encoded training and evaluation splits."""

    label_list: list[str]
    scheme: str
    train_features: list[dict[str, Any]]
    train_stats: DataStats
    label_counts: list[int]  # per label, over the encoded training positions that enter the loss
    evals: dict[str, EvalSplit] = field(default_factory=dict)
    max_length: int = 256
    context_size: int = 0  # document context (nerfocal.context), saved with the model
    context_pack: int = 0  # training on packed runs of sentences (docs/context.md#packing), saved too
    train_without_context: list[dict[str, Any]] | None = None  # for context_dropout

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_list))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.label_list)}

    def stats(self) -> dict[str, dict[str, int]]:
        return {"train": self.train_stats.as_dict(), **{k: v.stats.as_dict() for k, v in self.evals.items()}}


@dataclass
class TrainResult:
    """What :func:`train` returns: the exit status (0 ok, 128 + N stopped by signal N), the metrics
    written to ``eval_results.json`` (None when stopped) and the output directory."""

    status: int
    output_dir: Path
    metrics: dict[str, Any] | None = None


def feature_label_counts(features: list[dict[str, Any]], num_labels: int) -> list[int]:
    """Count of each label id over the positions of the encoded ``features`` that enter the loss.

    These are the frequencies the loss sees: they follow ``label_all_tokens`` (every sub-word labelled),
    ``max_train_samples`` and ``long_sentences: truncate``, unlike word counts over the whole file.
    """
    counts = [0] * num_labels
    for feature in features:
        for label in feature["labels"]:
            if label >= 0:
                counts[label] += 1
    return counts


def prepare_data(data_cfg: Any, tokenizer: Any, data: Any = None) -> PreparedData:
    """Read (unless ``data``, a :class:`~nerfocal.data.NerData`, is given) and encode the configured
    splits (``data_cfg``: a :class:`~nerfocal.config.DataConfig`)."""
    from nerfocal.context import pack_limit
    from nerfocal.context_training import log_context
    from nerfocal.data import load_ner_data
    from nerfocal.encode import encode_eval_windows, encode_sentences

    data = data if data is not None else load_ner_data(data_cfg)
    logger.info("labels (%d): %s", len(data.label_list), " ".join(data.label_list))
    model_max = getattr(tokenizer, "model_max_length", data_cfg.max_length) or data_cfg.max_length
    max_length = min(data_cfg.max_length, model_max)
    train_sentences = data.sentences["train"][: data_cfg.max_train_samples]
    context = getattr(data_cfg, "context_size", 0)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    pack = pack_limit(getattr(data_cfg, "context_pack", 0), budget, context)  # what is used, and saved
    shared = dict(max_length=max_length, context_size=context, context_pack=pack)
    options = dict(shared, long_sentences=data_cfg.long_sentences, label_all_tokens=data_cfg.label_all_tokens)
    train_features, _, train_stats = encode_sentences(train_sentences, tokenizer, data.label2id, **options)
    bare = None  # context_dropout: the same sequences without the context around them (same labels)
    if context and getattr(data_cfg, "context_dropout", 0.0) > 0:
        bare = encode_sentences(train_sentences, tokenizer, data.label2id, outer_context=False, **options)[0]
    evals = {}
    for split in ("validation", "test"):
        sentences = data.sentences.get(split)
        if sentences:
            # the windows of nerfocal predict / evaluate (overlapping, each word read once): same entities
            feats, windows, stats = encode_eval_windows(sentences, tokenizer, data.label2id, **shared)
            evals[split] = EvalSplit(feats, windows, sentences, stats)
    log_context(context, {"train": train_stats, **{k: v.stats for k, v in evals.items()}})
    return PreparedData(
        label_list=data.label_list,
        scheme=data.scheme,
        train_features=train_features,
        train_stats=train_stats,
        label_counts=feature_label_counts(train_features, len(data.label_list)),
        evals=evals,
        max_length=max_length,
        context_size=context,
        context_pack=pack,
        train_without_context=bare,
    )


def build_model(model_cfg: Any, loss_cfg: Any, prepared: PreparedData) -> Any:
    """A token-classification model with a head of ``len(label_list)`` labels: a fresh head for an encoder,
    the trained head for a model with the same labels, rows mapped by label name for one with other labels
    (:func:`nerfocal.head.load_for_finetuning`). Prior bias init (on for the focal losses unless
    ``prior_init`` says otherwise) touches only the newly initialised rows."""
    import torch
    from transformers import AutoConfig

    from nerfocal.head import load_for_finetuning
    from nerfocal.loading import resolve_model_path, wrap_loading_errors
    from nerfocal.losses import resolve_prior_init
    from nerfocal.trainer import find_classifier, init_classifier_bias

    model_path = resolve_model_path(model_cfg.model_name_or_path)
    with wrap_loading_errors(model_path, "the model"):
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=model_cfg.trust_remote_code)
        model, new_rows = load_for_finetuning(
            model_path, config, prepared.label_list, trust_remote_code=model_cfg.trust_remote_code
        )
    model.config.nerfocal_tag_scheme = prepared.scheme
    model.config.nerfocal_temperature = 1.0
    model.config.nerfocal_max_length = prepared.max_length  # predict/evaluate window like training
    model.config.nerfocal_context_size = prepared.context_size  # ... and read the same document context
    model.config.nerfocal_context_pack = prepared.context_pack
    prior = resolve_prior_init(model_cfg.prior_init, loss_cfg.loss)
    if prior and new_rows:
        head = find_classifier(model)
        kept = head.bias.detach().clone() if head.bias is not None else None
        bias = init_classifier_bias(model, prepared.label_counts, model_cfg.prior_floor)
        if kept is not None and len(new_rows) < len(bias):  # trained rows keep their trained bias
            keep = [i for i in range(len(bias)) if i not in set(new_rows)]
            with torch.no_grad():
                head.bias[keep] = kept[keep]
        logger.info(
            "prior init: classifier bias = log(label frequency): %s",
            {prepared.label_list[i]: round(float(bias[i]), 3) for i in new_rows},
        )
    elif prior:
        logger.info("prior init: skipped, the classifier head was trained with these labels")
    return model


def build_trainer(
    model: Any,
    tokenizer: Any,
    prepared: PreparedData,
    data_cfg: Any,
    loss_cfg: Any,
    args: Any,
    callbacks: list[Any] | None = None,
) -> Any:
    """The :class:`~nerfocal.trainer.FocalLossTrainer` of a run, with early stopping when configured."""
    from transformers import DataCollatorForTokenClassification, EarlyStoppingCallback

    from nerfocal.context_training import training_dataset
    from nerfocal.evaluate import make_compute_metrics
    from nerfocal.schedule import require_dev_set
    from nerfocal.trainer import FocalLossTrainer

    dev = prepared.evals.get("validation")
    seed = args.data_seed if args.data_seed is not None else args.seed
    p = getattr(data_cfg, "context_dropout", 0.0)
    train_dataset, callbacks_in = training_dataset(
        prepared.train_features, prepared.train_without_context, p, seed
    )
    callbacks = list(callbacks or []) + callbacks_in
    if getattr(args, "early_stopping_patience", None):
        require_dev_set(dev)
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold))
    compute_metrics = None
    if dev is not None:
        compute_metrics = make_compute_metrics(
            dev.windows, dev.sentences, prepared.id2label, data_cfg.strict_metrics
        )
    return FocalLossTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=dev.features if dev else None,
        data_collator=DataCollatorForTokenClassification(
            tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None
        ),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        loss_config=loss_cfg,
        label_list=prepared.label_list,
        label_counts=prepared.label_counts,
        length_group_order=data_cfg.length_group_order,
        length_group_steps=data_cfg.length_group_steps,
        callbacks=callbacks,
    )


def best_checkpoint_info(state: Any) -> dict[str, Any]:
    """The best dev checkpoint Trainer kept (early stopping): its step, epoch and dev metric; {} if none."""
    if not getattr(state, "best_model_checkpoint", None):
        return {}
    step = getattr(state, "best_global_step", None) or int(str(state.best_model_checkpoint).rsplit("-", 1)[1])
    epoch = next(
        (e.get("epoch") for e in state.log_history if e.get("step") == step and "eval_loss" in e), None
    )
    return {"best_step": step, "best_epoch": epoch, "best_metric": state.best_metric}


def train(model_cfg: Any, data_cfg: Any, loss_cfg: Any, args: Any) -> TrainResult:
    """Train, evaluate and save one run (the configs of :func:`nerfocal.config.parse_config`).

    Raises:
        ValueError, FileNotFoundError: bad options or data (one line naming the file or option), or an
            ``output_dir`` holding another run without ``overwrite_output_dir`` or ``resume_from_checkpoint``.
        nerfocal.trainer.LossDivergedError: a NaN/inf loss (the message names the step and the checkpoint).
    """
    from transformers import set_seed

    from nerfocal.data import load_ner_data
    from nerfocal.loading import load_tokenizer, resolve_model_path
    from nerfocal.losses import resolve_alpha
    from nerfocal.preflight import check_run_sources
    from nerfocal.resume import StopOnSignal, resolve_resume_checkpoint
    from nerfocal.run_dir import prepare_output_dir
    from nerfocal.schedule import settle_default_schedule

    check_run_sources(model_cfg, args)  # the model, output_dir, a checkpoint: fail before reading data
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start = time.time()
    set_seed(args.seed)
    out = Path(args.output_dir)
    resume = resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    prepare_output_dir(args, resume)  # another run there: refused, or removed with overwrite_output_dir
    data = load_ner_data(data_cfg)  # bad data fails here, before the model is loaded
    model_path = resolve_model_path(model_cfg.model_name_or_path)
    tokenizer = load_tokenizer(model_cfg.tokenizer_name or model_path, model_cfg.trust_remote_code)
    prepared = prepare_data(data_cfg, tokenizer, data)
    settle_default_schedule(args, "validation" in prepared.evals)  # a dataset without dev: no early stopping
    # an alpha that does not fit the labels fails now, before the model is loaded
    resolve_alpha(
        loss_cfg.alpha, prepared.label_list, prepared.label_counts, normalization=loss_cfg.alpha_normalization
    )
    model = build_model(model_cfg, loss_cfg, prepared)
    stopper = StopOnSignal()  # SIGTERM/SIGINT: checkpoint, then stop
    trainer = build_trainer(model, tokenizer, prepared, data_cfg, loss_cfg, args, callbacks=[stopper])
    from nerfocal.tracking import add_loss_schedule_callback

    add_loss_schedule_callback(trainer)  # the active loss, gamma and warm-up in every log / tracker
    try:
        train_result = trainer.train(resume_from_checkpoint=resume)
    finally:
        stopper.uninstall()
    if stopper.signum is not None:
        if args.process_index == 0:
            name = signal.Signals(stopper.signum).name
            checkpoint = out / f"checkpoint-{stopper.stopped_at}"
            print(
                f"nerfocal train: {name}: interrupted at step {stopper.stopped_at}; checkpoint saved to "
                f"{checkpoint}; resume with --resume_from_checkpoint auto",
                file=sys.stderr,
            )
        trainer.accelerator.wait_for_everyone()  # no process leaves (and gets its peers killed) early
        return TrainResult(128 + stopper.signum, out)  # the shell's "ended by signal N", a clean exit
    train_seconds = time.time() - start
    metrics: dict[str, Any] = {
        "train": {
            **train_result.metrics,
            **best_checkpoint_info(trainer.state),
            "global_step": trainer.state.global_step,
            "alpha": trainer.alpha_by_label(),  # the class weights the loss used (after alpha_normalization)
            "wall_seconds": round(train_seconds, 1),
            "num_input_tokens_seen": trainer.state.num_input_tokens_seen,  # non-padding by default
            "train_tokens_per_second": round(
                trainer.state.num_input_tokens_seen
                / max(train_result.metrics.get("train_runtime", 0.0), 1e-9),
                1,
            ),
        },
        "data": prepared.stats(),
    }
    save_run(trainer, prepared, metrics, (model_cfg, data_cfg, loss_cfg, args), train_seconds)
    return TrainResult(0, out, metrics)


def save_run(
    trainer: Any,
    prepared: PreparedData,
    metrics: dict[str, Any],
    configs: tuple[Any, ...],
    train_seconds: float,
) -> None:
    """Save the model, evaluate dev and test (temperature fitted on dev), write config, results, reports.

    The model is saved before evaluating: a signal or crash during evaluation no longer loses it.

    Raises:
        nerfocal.run_dir.FinalSaveError: the model could not be written (a full disk); the message names
            the space needed and free, the rescue folder it was saved to, and the last complete checkpoint.
    """
    from nerfocal.config import save_config
    from nerfocal.evaluate import evaluate_splits
    from nerfocal.io import write_json, write_text
    from nerfocal.metrics import format_report
    from nerfocal.run_dir import save_final_model

    _, data_cfg, loss_cfg, args = configs
    out = Path(args.output_dir)
    main_process = args.process_index == 0
    save_final_model(trainer, out)  # a full disk: retried into a rescue folder, then a one-line error
    trainer.save_state()
    split_metrics, raw, temperature, o_bias = evaluate_splits(
        trainer, prepared.evals, prepared.id2label, data_cfg, loss_cfg
    )
    metrics.update(split_metrics)
    reports = [
        format_report(m, title=f"== {split} ({len(prepared.evals[split].sentences)} sentences) ==")
        for split, m in split_metrics.items()
    ]
    trainer.model.config.nerfocal_temperature, trainer.model.config.nerfocal_o_bias = temperature, o_bias
    if main_process:
        trainer.model.config.save_pretrained(out)  # now with the fitted temperature and O bias
        save_config(out / "nerfocal_config.yaml", *configs)
        write_json(out / "eval_results.json", metrics)
        write_text(out / "eval_report.txt", "\n\n".join(reports) + "\n")
        print("\n\n".join(reports))
        print(f"model saved to {out} (training {train_seconds:.0f} s)")
        _write_predictions_and_report(out, raw, prepared, temperature, o_bias)
        push_if_asked(args, out)
    trainer.accelerator.wait_for_everyone()


def _write_predictions_and_report(
    out: Path, raw: dict[str, Any], prepared: PreparedData, temperature: float, o_bias: float
) -> None:
    """Word-level predictions + the run report; a failure here never fails training."""
    try:
        from nerfocal.report import write_report, write_run_predictions

        for split, (logits, _) in raw.items():
            evaluated = prepared.evals[split]
            path = out / f"predictions_{split}.jsonl"
            write_run_predictions(
                path, logits, evaluated.windows, evaluated.sentences, prepared.id2label, temperature, o_bias
            )
        write_report(out)
    except Exception:
        logger.warning("could not write the predictions or the report in %s", out, exc_info=True)
    try:
        from nerfocal.card import write_model_card

        write_model_card(out)  # README.md: the Hub's model card of the run
    except Exception:
        logger.warning("could not write the model card in %s", out, exc_info=True)
