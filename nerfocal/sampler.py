"""``EpochLengthGroupedSampler``: transformers' length-grouped shuffle, seeded with ``seed + epoch``, so
that a resumed run and N processes see the batches of one uninterrupted process (see :mod:`nerfocal.trainer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from nerfocal.config import LENGTH_GROUP_ORDERS

__all__ = ["EpochLengthGroupedSampler"]


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` whose shuffle depends only on ``seed + epoch``.

    Every process draws the same order, and a run resumed in epoch ``e`` draws the order the
    uninterrupted run drew in epoch ``e`` (transformers' sampler uses the global RNG, which by then
    has moved on by an amount a resumed run does not know).

    transformers' grouping shuffles the examples, cuts them into mega-batches of ``group_steps``
    batches (default: 50, or fewer so that there are at least 4) and sorts each mega-batch by length,
    longest first; training then walks every mega-batch from its longest batch to its shortest
    (``order="sorted"``, the default). ``order="shuffled"`` keeps the same batches, so the same
    padding, and visits them in random order, the batch with the longest example still first (an
    out-of-memory error comes at the first step) and a short last batch still last. On CoNLL-2003
    the order made no difference to F1 (docs/benchmarks.md).

    Args:
        batch_size: indices are grouped into batches of this size (the examples of one optimizer step:
            per-device batch x accumulation steps x processes).
        lengths: length of every example.
        seed: base seed (``data_seed`` or ``seed``).
        epoch: returns the current epoch (0-based) when an epoch's order is drawn.
        order: ``"shuffled"`` or ``"sorted"`` (see above).
        group_steps: batches per mega-batch; None for transformers' default.
    """

    def __init__(
        self,
        batch_size: int,
        lengths: Sequence[int],
        seed: int,
        epoch: Callable[[], int],
        order: str = "sorted",
        group_steps: int | None = None,
    ) -> None:
        if order not in LENGTH_GROUP_ORDERS:
            accepted = ", ".join(LENGTH_GROUP_ORDERS)
            raise ValueError(f"length_group_order: expected one of {accepted}, got {order!r}")
        if group_steps is not None and group_steps < 1:
            raise ValueError(f"length_group_steps: expected an integer >= 1, got {group_steps!r}")
        super().__init__(batch_size, lengths=list(lengths))
        self.seed = int(seed)
        self.epoch = epoch
        self.order = order
        self.group_steps = group_steps

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch())
        indices = get_length_grouped_indices(
            self.lengths, self.batch_size, mega_batch_mult=self.group_steps, generator=generator
        )
        if self.order == "sorted" or len(indices) <= 2 * self.batch_size:
            return iter(indices)
        size = self.batch_size
        batches = [indices[i : i + size] for i in range(0, len(indices), size)]
        # The first batch holds the longest example (transformers puts it there) and stays first; a short
        # last batch stays last, or every later batch would straddle two groups (and two optimizer steps).
        tail = len(batches) - 1 if len(batches[-1]) < size else len(batches)
        middle = batches[1:tail]
        shuffled = [middle[i] for i in torch.randperm(len(middle), generator=generator).tolist()]
        return iter([i for batch in (*batches[:1], *shuffled, *batches[tail:]) for i in batch])
