"""pytest set-up: offline environment and session fixtures. Shared builders live in ``fixtures.py``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fixtures import build_tiny_model, build_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random encoder (with a 2-label head the training script replaces)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_encoder"), labels=["O", "B-X"])


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """The cased WordPiece tokenizer of :func:`fixtures.build_tokenizer`."""
    return build_tokenizer()
