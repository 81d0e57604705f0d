"""Small builders shared by the trainer and end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import LABELS, SAMPLE, build_tokenizer


def tiny_model(labels: list[str] = LABELS, seed: int = 0, dropout: float = 0.0) -> Any:
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        classifier_dropout=dropout,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return BertForTokenClassification(config)


def sample_features(n: int, tokenizer: Any = None) -> tuple[list[dict[str, Any]], Any]:
    from nerfocal.conll import read_conll
    from nerfocal.encode import encode_sentences

    tokenizer = tokenizer or build_tokenizer()
    sentences = list(read_conll(SAMPLE / "train.conll"))[:n]
    features, _, _ = encode_sentences(
        sentences, tokenizer, {label: i for i, label in enumerate(LABELS)}, max_length=64
    )
    return features, tokenizer


def make_trainer(
    tmp_path: Path, features: list[dict[str, Any]], tokenizer: Any, model: Any = None, **overrides: Any
) -> Any:
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from nerfocal.config import LossConfig
    from nerfocal.trainer import FocalLossTrainer

    loss_keys = {f for f in LossConfig.__dataclass_fields__}
    loss_cfg = LossConfig(**{k: v for k, v in overrides.items() if k in loss_keys})
    arg_values: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=1,
        learning_rate=1.0,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        train_sampling_strategy="sequential",
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    arg_values.update({k: v for k, v in overrides.items() if k not in loss_keys})
    return FocalLossTrainer(
        model=model if model is not None else tiny_model(),
        args=TrainingArguments(**arg_values),
        train_dataset=features,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        loss_config=loss_cfg,
        label_list=LABELS,
        label_counts=[100, 1, 1, 3, 1, 3, 2, 4, 1],
    )
