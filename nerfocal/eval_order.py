"""Evaluation in length-sorted batches, with the predictions handed back in dataset order.

transformers evaluates in dataset order (or, with ``train_sampling_strategy group_by_length``, in a
seeded length-grouped shuffle whose predictions come back out of order). Dev sentences of random
lengths in batches of 64 are mostly padding, so nerfocal's trainer, on one process, runs them longest
first and puts every row back in dataset order before ``compute_metrics`` and in what ``evaluate`` /
``predict`` return: the scores and predictions are those of the sequential order, 2.3x faster
(``benchmark.py eval-order``).
Several processes keep the dataset order (accelerate shards it and ``gather_for_metrics`` restores it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import SequentialSampler
from transformers import EvalPrediction, Trainer
from transformers.trainer_utils import EvalLoopOutput

__all__ = ["LengthSortedEvaluation"]


class LengthSortedEvaluation(Trainer):
    """A ``Trainer`` whose evaluation batches are length-sorted and whose outputs are in dataset order."""

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        # transformers also groups *evaluation* batches by length (a seeded shuffle) when
        # train_sampling_strategy is group_by_length, and would hand the predictions back in that order.
        # One process: longest first (less padding), the rows put back in dataset order by
        # evaluation_loop; else dataset order (accelerate shards in order and gather_for_metrics
        # restores it, dropping the padding rows).
        if eval_dataset is None or not hasattr(eval_dataset, "__len__"):
            return None
        order = self._eval_order(eval_dataset)
        if order is not None:
            return order.tolist()
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def _eval_order(self, dataset: Any) -> np.ndarray | None:
        """Dataset indices by decreasing length (stable), or None: keep the dataset order.

        The sampler and the loop ask for the same dataset in turn: the last answer is kept with the
        dataset itself (an identity check, and the reference keeps its id from being reused).
        """
        if self.args.world_size > 1 or self.args.batch_eval_metrics or not hasattr(dataset, "__len__"):
            return None
        cached = getattr(self, "_nerfocal_eval_order", None)
        if cached is not None and cached[0] is dataset and len(cached[1]) == len(dataset):
            return cached[1]
        try:
            lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
        except (KeyError, TypeError, IndexError):
            return None
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        self._nerfocal_eval_order = (dataset, order)
        return order

    def evaluation_loop(self, dataloader: Any, *args: Any, **kwargs: Any) -> EvalLoopOutput:
        """Trainer's loop over length-sorted batches, with the rows put back in dataset order for
        ``compute_metrics`` and in the returned predictions (what ``_get_eval_sampler`` sorted)."""
        order = self._eval_order(getattr(dataloader, "dataset", None))
        if order is None or len(order) == 0:
            return super().evaluation_loop(dataloader, *args, **kwargs)
        inverse = np.argsort(order, kind="stable")

        def restore(rows: Any) -> Any:
            if isinstance(rows, np.ndarray) and rows.ndim > 0 and len(rows) == len(inverse):
                return rows[inverse]
            if isinstance(rows, (tuple, list)):
                return type(rows)(restore(r) for r in rows)
            return rows

        compute_metrics = self.compute_metrics
        if compute_metrics is not None:
            self.compute_metrics = lambda p: compute_metrics(
                EvalPrediction(
                    predictions=restore(p.predictions),
                    label_ids=restore(p.label_ids),
                    inputs=restore(getattr(p, "inputs", None)),
                    losses=restore(getattr(p, "losses", None)),
                )
            )
        try:
            output = super().evaluation_loop(dataloader, *args, **kwargs)
        finally:
            self.compute_metrics = compute_metrics
        return EvalLoopOutput(
            predictions=restore(output.predictions),
            label_ids=restore(output.label_ids),
            metrics=output.metrics,
            num_samples=output.num_samples,
        )
