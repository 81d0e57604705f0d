"""Tiny random BERT token classifiers saved like training saves them, built offline in-process."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast  # type: ignore[attr-defined]

IOB2_LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
BIOES_LABELS = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "I-PER", "E-PER", "S-PER"]

CORPUS = [
    "Angela Merkel visited Paris in June with the European Union delegation .",
    "Müller , Zoë and José met at the café in São Paulo ; 🙂 great !",
    "The United Nations said on Tuesday that New-York-based firms don't pay .",
    "playing played player plays Berlin Germany London Reuters",
]


def build_tokenizer(model_max_length: int = 512) -> BertTokenizerFast:
    """A lower-casing WordPiece tokenizer trained on :data:`CORPUS` (vocabulary ~300)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def save_tiny_model(
    directory: Path,
    labels: list[str] | None = None,
    *,
    max_length: int = 32,
    seed: int = 0,
    scheme: str | None = None,
    temperature: float | None = None,
    entity_bias: float = 1.0,
) -> Path:
    """Save a random 2-layer BERT token classifier + tokenizer with ``save_pretrained``.

    ``entity_bias`` is added to the classifier bias of non-O labels so that a random model still
    predicts plenty of entities.
    """
    labels = labels or IOB2_LABELS
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(model_max_length=max_length)
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    if scheme is not None:
        config.nerfocal_tag_scheme = scheme
    if temperature is not None:
        config.nerfocal_temperature = temperature
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)  # sharper random decisions that vary across words
        model.classifier.bias[1:] += entity_bias
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def fit_tiny_model(directory: Path, sentences: list[tuple[list[str], list[str]]], steps: int = 25) -> Path:
    """Briefly train a saved tiny model on ``(words, tags)`` (first sub-word labelled), and re-save it.

    A few steps give a model that is right on some entities and wrong on others, so that metric
    comparisons are not between two zeros.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoded = tokenizer(
        [w for w, _ in sentences], is_split_into_words=True, padding=True, return_tensors="pt"
    )
    labels = torch.full_like(encoded["input_ids"], -100)
    for row, (_, tags) in enumerate(sentences):
        previous = None
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word != previous:
                labels[row, position] = model.config.label2id[tags[word]]
            previous = word
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**encoded, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(directory)
    return directory
