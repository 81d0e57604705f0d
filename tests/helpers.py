"""Kept for older test modules: import from ``fixtures`` instead."""

from fixtures import make_trainer, sample_features, tiny_model  # noqa: F401
