"""The classification head of a run: load the encoder for fine-tuning and fit its head to the run's labels.

Three starting points, told apart by the checkpoint's label map and transformers' loading info:

* an encoder without a head (or with a head of placeholder labels ``LABEL_0...``): a fresh head, one
  log line instead of transformers' ``LOAD REPORT ... MISSING/MISMATCH`` table;
* a trained token classifier with the same labels in the same order: its head is kept as it is;
* a trained token classifier with other labels (another order, some new, some gone): the rows are mapped
  by label name, so the row trained as ``B-LOC`` stays ``B-LOC``; labels the checkpoint never had get
  fresh rows. The mapping is logged.

:func:`load_for_finetuning` returns the rows that are new, the only ones prior bias init may touch.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("nerfocal")

__all__ = ["checkpoint_labels", "load_for_finetuning", "quiet_loading_report"]


def checkpoint_labels(config: Any) -> list[str] | None:
    """The checkpoint's labels in id order when they are real tags; None for none or ``LABEL_N`` ones."""
    id2label = getattr(config, "id2label", None) or {}
    labels = [id2label.get(i, id2label.get(str(i))) for i in range(len(id2label))]
    if not labels or any(label is None for label in labels):
        return None
    if all(re.fullmatch(r"LABEL_\d+", str(label)) for label in labels):
        return None
    return [str(label) for label in labels]


@contextlib.contextmanager
def quiet_loading_report() -> Iterator[None]:
    """Silence transformers' warnings (its ``LOAD REPORT`` table) while loading; restored afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _head_name(model: nn.Module, head: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is head)


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def load_for_finetuning(
    model_path: str, config: Any, label_list: list[str], *, trust_remote_code: bool = False
) -> tuple[Any, list[int]]:
    """The token-classification model of a run, its head fitted to ``label_list``.

    Args:
        model_path: local directory or hub name (already resolved).
        config: the checkpoint's config, as read by ``AutoConfig``; its label map is replaced.
        label_list: the run's labels; ``config.id2label`` becomes ``dict(enumerate(label_list))``.

    Returns:
        ``(model, new_rows)``: ``new_rows`` are the label ids whose classifier row (and bias) was freshly
        initialised, all of them for a new head, none when the checkpoint had the same labels.
    """
    from transformers import AutoModelForTokenClassification

    from nerfocal.trainer import find_classifier

    old_labels = checkpoint_labels(config)
    remap = old_labels is not None and old_labels != label_list
    if remap:
        config.num_labels = len(old_labels or [])  # load the trained head whole, then map its rows
    else:
        config.num_labels = len(label_list)
        config.id2label = dict(enumerate(label_list))
        config.label2id = {label: i for i, label in enumerate(label_list)}
    with quiet_loading_report():
        model, info = AutoModelForTokenClassification.from_pretrained(
            model_path,
            config=config,
            use_safetensors=True,  # never unpickle weights
            ignore_mismatched_sizes=True,  # a checkpoint with another head gets a fresh one of our size
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
    head = find_classifier(model)
    prefix = _head_name(model, head) + "."
    fresh = {str(k) for k in info.get("missing_keys") or []} | {
        str(k[0]) for k in info.get("mismatched_keys") or []
    }
    other_missing = sorted(k for k in fresh if not k.startswith(prefix))
    if other_missing:
        logger.warning(
            "%s: %d encoder weight(s) not in the checkpoint, newly initialised (e.g. %s)",
            model_path,
            len(other_missing),
            other_missing[0],
        )
    if any(k.startswith(prefix) for k in fresh):
        logger.info(
            "the classification head (%s, %d labels) is new, as expected when fine-tuning an encoder",
            prefix[:-1],
            len(label_list),
        )
        if remap:  # loaded at the checkpoint's label count: a fresh head of the run's size instead
            _map_rows(model, head, prefix[:-1], [], label_list)
        return model, list(range(len(label_list)))
    if not remap:
        logger.info("the classification head of %s is kept: same %d labels", model_path, len(label_list))
        return model, []
    return model, _map_rows(model, head, prefix[:-1], old_labels or [], label_list)


def _map_rows(model: Any, head: nn.Linear, name: str, old: list[str], new: list[str]) -> list[int]:
    """Replace ``head`` by one of ``len(new)`` rows: the rows of labels in ``old`` copied."""
    fresh = nn.Linear(head.in_features, len(new), bias=head.bias is not None)
    fresh.to(device=head.weight.device, dtype=head.weight.dtype)
    std = float(getattr(model.config, "initializer_range", 0.02))
    old_index = {label: i for i, label in enumerate(old)}
    new_rows = [i for i, label in enumerate(new) if label not in old_index]
    with torch.no_grad():
        fresh.weight.normal_(0.0, std)
        if fresh.bias is not None:
            fresh.bias.zero_()
        for i, label in enumerate(new):
            j = old_index.get(label)
            if j is not None:
                fresh.weight[i] = head.weight[j]
                if fresh.bias is not None and head.bias is not None:
                    fresh.bias[i] = head.bias[j]
    _replace_module(model, name, fresh)
    model.config.num_labels = len(new)
    model.config.id2label = dict(enumerate(new))
    model.config.label2id = {label: i for i, label in enumerate(new)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(new)
    dropped = [label for label in old if label not in set(new)]
    if not old:
        return new_rows
    logger.warning(
        "the checkpoint's head has other labels: %d row(s) kept by label name, new rows for %s, "
        "dropped rows of %s",
        len(new) - len(new_rows),
        [new[i] for i in new_rows] or "none",
        dropped or "none",
    )
    return new_rows
