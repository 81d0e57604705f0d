"""Shared fixtures: a tiny BERT and a WordPiece tokenizer built in-process (no hub, no network)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SHARED_DATA = ROOT.parent / "shared" / "data"
LABELS = ["O", "B-EVENT", "I-EVENT", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def build_tokenizer(save_dir: Path | None = None):  # type: ignore[no-untyped-def]
    """A cased WordPiece tokenizer trained on the sample data (plus a few odd characters).

    Built once per test session: the WordPiece trainer breaks ties between equally frequent pairs in
    hash order, so two trainings may give different vocabularies.
    """
    fast = _build_tokenizer()
    if save_dir is not None:
        fast.save_pretrained(save_dir)
    return fast


@functools.lru_cache(maxsize=1)
def _build_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    corpus = [
        line.split(" ")[0]
        for line in (SAMPLE / "train.conll").read_text(encoding="utf-8").splitlines()
        if line
    ]
    corpus += ["Zürich", "café", "naïve", "🙂", "Ünal", "São", "Paulo", "the", "a", "of"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # BERT-like: strips control/format characters (so a zero-width space becomes zero sub-words)
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        continuing_subword_prefix="##",
    )
    tok.train_from_iterator(corpus, trainer)
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tok, model_max_length=64)


def build_tiny_model(save_dir: Path, labels: list[str] = LABELS, seed: int = 0, max_position: int = 64):  # type: ignore[no-untyped-def]
    """Save a tiny random BertForTokenClassification + tokenizer in ``save_dir``; returns the dir."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForTokenClassification(config)
    save_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    return save_dir


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random encoder (with a 2-label head the training script replaces)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_encoder"), labels=["O", "B-X"])


@pytest.fixture(scope="session")
def tiny_tokenizer():  # type: ignore[no-untyped-def]
    return build_tokenizer()
