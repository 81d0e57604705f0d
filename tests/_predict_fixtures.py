"""Kept for older test modules: import from ``fixtures`` instead."""

from fixtures import (  # noqa: F401
    BIOES_LABELS,
    CORPUS,
    IOB2_LABELS,
    fit_tiny_model,
    save_tiny_model,
)
from fixtures import build_uncased_tokenizer as build_tokenizer  # noqa: F401
