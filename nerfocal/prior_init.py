"""Prior bias initialisation of the classifier head (``prior_init``, on by default for the focal losses)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["find_classifier", "init_classifier_bias"]


def find_classifier(model: nn.Module) -> nn.Linear:
    """The classifier head: ``model.classifier`` or the last ``Linear`` with ``num_labels`` outputs."""
    num_labels = int(model.config.num_labels)  # type: ignore[union-attr,arg-type]
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear) and head.out_features == num_labels:
        return head
    for module in reversed(list(model.modules())):
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            return module
    raise ValueError(f"prior_init: no Linear layer with {num_labels} outputs found in {type(model).__name__}")


def init_classifier_bias(model: nn.Module, label_counts: list[int], floor: float = 1e-5) -> torch.Tensor:
    """Prior bias init: ``b_c = log(max(pi_c, floor))`` with ``pi_c`` the training frequency of label c.

    The softmax form of the focal-loss paper's ``b = -log((1 - pi) / pi)``: with near-zero weights the
    initial softmax output equals the label prior, so the first steps are not spent learning that ``O``
    is frequent, and the rare classes do not start with a large, unstable loss. The floor keeps labels
    absent from training at a finite bias.

    Returns:
        the new bias, float tensor ``[C]``.
    """
    head = find_classifier(model)
    if head.bias is None:
        raise ValueError("prior_init: the classifier has no bias")
    if len(label_counts) != head.out_features:
        raise ValueError(f"prior_init: expected {head.out_features} label counts, got {len(label_counts)}")
    counts = torch.tensor(label_counts, dtype=torch.float64)
    if counts.sum() <= 0:
        raise ValueError("prior_init: the training data has no labels")
    prior = (counts / counts.sum()).clamp(min=floor)
    bias = prior.log().to(head.bias.dtype)
    with torch.no_grad():
        head.bias.copy_(bias)
    return bias
