"""The training side of document context (:mod:`nerfocal.context`): context dropout and the log.

Context dropout (FLERT's trick, ``context_dropout``): during training, a sentence is sometimes seen
without its document context, so the model also learns to tag sentences that have none.

Each sentence is encoded twice, with and without its context (:func:`nerfocal.encode.encode_sentences`
gives both the same labels at the same words), and :class:`ContextDropoutDataset` serves one or the
other. With ``context_pack`` the unit is a packed run: dropping its context drops the context around
the run, whose sentences stay together. The draw is made per sentence (run) and per epoch from
``(seed, epoch)`` only, so a run is reproducible and a run resumed in epoch ``e`` draws what the
uninterrupted run drew; it touches no global random state. Only the training set is wrapped:
evaluation always reads the context.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Dataset
from transformers import TrainerCallback

__all__ = ["ContextDropoutCallback", "ContextDropoutDataset", "log_context", "training_dataset"]

logger = logging.getLogger("nerfocal")


class ContextDropoutDataset(Dataset):  # type: ignore[type-arg]
    """Training features whose context is dropped with probability ``p``, drawn per (seed, epoch).

    Args:
        with_context: the features encoded with document context.
        without_context: the same sentences encoded without it (same length and order).
        p: probability of serving a sentence without its context, in [0, 1].
        seed: the run's data seed.
    """

    def __init__(
        self, with_context: list[dict[str, Any]], without_context: list[dict[str, Any]], p: float, seed: int
    ) -> None:
        if len(with_context) != len(without_context):
            raise ValueError(
                f"context_dropout: expected the same sentences with and without context, got "
                f"{len(with_context)} and {len(without_context)} features"
            )
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"context_dropout: expected a number in [0, 1], got {p!r}")
        self.with_context, self.without_context = with_context, without_context
        self.p, self.seed = float(p), int(seed)
        self.epoch = -1
        self.dropped: list[bool] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw which sentences go without context in ``epoch`` (a pure function of seed and epoch)."""
        if epoch == self.epoch:
            return
        self.epoch = epoch
        rng = random.Random(f"nerfocal-context-dropout:{self.seed}:{epoch}")
        self.dropped = [rng.random() < self.p for _ in self.with_context]

    def __len__(self) -> int:
        return len(self.with_context)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return (self.without_context if self.dropped[index] else self.with_context)[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))


class ContextDropoutCallback(TrainerCallback):
    """Tells the dataset which epoch begins (as ``floor(state.epoch)``, also right after a resume)."""

    def __init__(self, dataset: ContextDropoutDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(math.floor(state.epoch or 0))


def training_dataset(
    features: list[dict[str, Any]], bare: list[dict[str, Any]] | None, p: float, seed: int
) -> tuple[Any, list[Any]]:
    """The training set and the callbacks it needs: the features as they are, or (with ``bare``, the
    features without context, and ``p > 0``) a :class:`ContextDropoutDataset` and its callback."""
    if bare is None or p <= 0:
        return features, []
    dataset = ContextDropoutDataset(features, bare, p, seed)
    return dataset, [ContextDropoutCallback(dataset)]


def log_context(context_size: int, stats: dict[str, Any]) -> None:
    """Say how many sentences got document context, and warn when a split is one long document."""
    if not context_size:
        return
    for split, st in stats.items():
        logger.info(
            "%s: %d of %d sentences with document context (%d documents, context_size %d), %d sequences",
            *(split, st.context_sentences, st.sentences, st.documents, context_size, st.sequences),
        )
        if st.documents == 1 and st.sentences > 1:
            logger.warning(
                "%s: all %d sentences are one document (no -DOCSTART- or document_boundary line): each "
                "reads its neighbours as context; set document_boundary: sentence if they are unrelated",
                *(split, st.sentences),
            )
