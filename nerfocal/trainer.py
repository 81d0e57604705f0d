"""``FocalLossTrainer``: a ``transformers.Trainer`` whose loss is nerfocal's configured loss.

How the loss is normalised (read against transformers 5.x ``Trainer.training_step``):

* ``Trainer`` counts the non-ignored labels of all micro-batches of one optimizer step
  (``num_items_in_batch``), summed over processes when ``average_tokens_across_devices`` is on
  (nerfocal's default). It only does so when ``model_accepts_loss_kwargs`` is true, which for BERT
  comes from its ``forward(**kwargs)``; we set it for every encoder, because our loss needs the count.
* Each micro-batch returns ``loss_sum / num_items_in_batch`` (``loss_normalization="step"``), so the
  gradients of the micro-batches of one step add up to the gradient of the mean over every token of
  the step: batch 8 x 1 step and batch 4 x 2 accumulation steps give the same update. With
  ``loss_normalization="dataset"`` (the default) the divisor is instead a constant, the mean
  labelled tokens of a step over the training set (:meth:`FocalLossTrainer.mean_tokens_per_step`),
  so that every token weighs the same in short length-grouped steps as in long ones; the
  accumulation argument is unchanged. ``loss_is_scaled_for_ga = True`` tells ``training_step`` not
  to divide by the accumulation steps again.
* With N processes, DDP averages gradients, so each process multiplies its share by N: N processes x
  batch b equals 1 process x batch N*b. When the training set is not a multiple of N x b, accelerate
  pads the last batch of an epoch with repeats of its first examples; their labels are ignored
  (:meth:`FocalLossTrainer.get_batch_samples`), so the equality holds at that step too.

The loss is normalised in exactly this one place; the loss functions are called with ``reduction="sum"``.

Interrupting and resuming (see :mod:`nerfocal.resume`): a checkpoint holds the weights, optimizer,
scheduler, RNG states (one file per process) and the step; on resume ``Trainer`` skips the batches already
seen in the current epoch. The length-grouped shuffle is seeded with ``seed + epoch`` and groups whole
optimizer steps (:class:`EpochLengthGroupedSampler`), so a resumed run sees the same batches as an
uninterrupted one in every epoch, and N processes x batch b the batches of 1 process x batch N*b.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers.trainer_pt_utils import LengthGroupedSampler

from nerfocal.eval_order import LengthSortedEvaluation
from nerfocal.losses import IGNORE_INDEX, compute_loss, loss_params, resolve_alpha
from nerfocal.prior_init import find_classifier, init_classifier_bias
from nerfocal.sampler import EpochLengthGroupedSampler

logger = logging.getLogger(__name__)

TRAIN_LOSS_FILE = "nerfocal_train_loss.json"  # in each checkpoint-N: the summed step losses so far

__all__ = [
    "EpochLengthGroupedSampler",
    "FocalLossTrainer",
    "LossDivergedError",
    "find_classifier",
    "init_classifier_bias",
]


class LossDivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step and the cause."""


class FocalLossTrainer(LengthSortedEvaluation):
    """Trainer computing ``loss_config.loss`` from the logits, with CE warm-up and gamma ramp.

    Args:
        loss_config: a :class:`~nerfocal.config.LossConfig`.
        label_list: label names in id order (for dict alpha).
        label_counts: training frequency of each label (for ``alpha="auto"`` and
            ``alpha_normalization="prior"``).
        *args, **kwargs: passed to ``transformers.Trainer``.
    """

    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        loss_config: Any,
        label_list: list[str],
        label_counts: list[int] | None = None,
        length_group_order: str = "sorted",
        length_group_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.length_group_order = length_group_order
        self.length_group_steps = length_group_steps
        # Make Trainer count the labels of every step for any encoder (see the module docstring).
        self.model_accepts_loss_kwargs = True
        self.loss_config = loss_config
        self.label_list = list(label_list)
        normalization = loss_config.alpha_normalization
        alpha = resolve_alpha(loss_config.alpha, self.label_list, label_counts, normalization=normalization)
        self.alpha: torch.Tensor | None = alpha
        if alpha is not None:
            logger.info("alpha (%s normalisation): %s", normalization, self.alpha_by_label())
        self._ce_steps: int | None = None
        self._tokens_per_step: float | None = None
        self._switch_logged = False

    def alpha_by_label(self) -> dict[str, float] | None:
        """The class weights the loss uses, by label name (rounded to 4 digits), or None without alpha."""
        if self.alpha is None:
            return None
        return {
            label: round(float(w), 4) for label, w in zip(self.label_list, self.alpha.tolist(), strict=True)
        }

    # ---- loss schedule ---------------------------------------------------------------------

    def ce_warmup_total_steps(self) -> int:
        """Optimizer steps of the cross-entropy warm-up: ``ce_warmup_steps`` + epochs x steps per epoch."""
        if self._ce_steps is None:
            steps = int(self.loss_config.ce_warmup_steps)
            if self.loss_config.ce_warmup_epochs > 0:
                per_epoch = math.ceil(
                    len(self.get_train_dataloader()) / self.args.gradient_accumulation_steps
                )
                steps += round(self.loss_config.ce_warmup_epochs * per_epoch)
            self._ce_steps = steps
        return self._ce_steps

    def mean_tokens_per_step(self) -> float | None:
        """Mean labelled tokens of an optimizer step over the training set (``loss_normalization="dataset"``).

        The labelled tokens of the training set divided by the optimizer steps of an epoch (a step holds
        per-device batch x accumulation steps x processes examples; the last one may be short). Dividing
        every step's summed loss by this constant makes the mean of the step losses over an epoch (the
        logged ``train_loss`` of whole epochs) the mean over its tokens, and gives a step of average size
        the loss it gets with ``"step"`` normalisation.
        None when the training set has no length (an iterable dataset): the trainer then falls back to
        the ``"step"`` normalisation and says so once in the log.
        """
        if self._tokens_per_step is None:  # counted once; 0.0 stands for "no length: fall back"
            dataset: Any = self.train_dataset
            if dataset is None or not hasattr(dataset, "__len__") or len(dataset) == 0:
                logger.warning(
                    "loss_normalization dataset needs a training set of known length; "
                    "using the step normalisation (each step's mean over its tokens)"
                )
                self._tokens_per_step = 0.0
            else:
                labelled = sum(sum(int(y != IGNORE_INDEX) for y in example["labels"]) for example in dataset)
                if self.args.dataloader_drop_last:  # full steps only: a step holds step_batch examples
                    per_step = labelled * min(self._step_batch(), len(dataset)) / len(dataset)
                else:  # the last step of an epoch may be short: divide by the steps an epoch has
                    per_step = labelled / math.ceil(len(dataset) / self._step_batch())
                self._tokens_per_step = max(1.0, per_step)
        return self._tokens_per_step or None

    def _step_batch(self) -> int:
        """Examples of one optimizer step: per-device batch x accumulation steps x processes."""
        args = self.args
        return args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)

    def current_loss(self, training: bool = True) -> tuple[str, dict[str, Any]]:
        """The loss name and parameters for the current optimizer step (``state.global_step``).

        During evaluation the configured loss is used whatever the step, so eval losses are comparable.
        """
        cfg = self.loss_config
        name = cfg.loss
        step = self.state.global_step
        ramp = 1.0
        if training and name != "ce":
            warmup = self.ce_warmup_total_steps()
            if step < warmup:
                return "ce", {}  # the warm-up is plain cross-entropy (no alpha)
            if warmup and not self._switch_logged:
                self._switch_logged = True
                if step == warmup:  # a run resumed past the switch has it in its log_history already
                    logger.info("step %d: cross-entropy warm-up done, switching to %s loss", step, name)
                    self.state.log_history.append({"step": step, "loss_switch": name})
            if cfg.gamma_ramp_steps:
                ramp = min(1.0, (step - warmup) / cfg.gamma_ramp_steps)
        return name, self.loss_params(name, ramp)

    def loss_params(self, name: str, ramp: float = 1.0) -> dict[str, Any]:
        """The keyword parameters of loss ``name`` (see :data:`nerfocal.losses.LOSSES`)."""
        return loss_params(name, self.loss_config, self.alpha, ramp)

    # ---- Trainer hooks -----------------------------------------------------------------------

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            # transformers' length-grouped shuffle draws from the global RNG, whose state at the start of an
            # epoch a resumed run cannot reproduce, and groups per process; seed it with (seed, epoch) and
            # group by the batch of a whole optimizer step, so that N processes x batch b get the batches
            # of 1 process x batch N*b (accelerate deals consecutive batches to the processes in turn)
            args = self.args
            seed = args.data_seed if args.data_seed is not None else args.seed
            sampler = EpochLengthGroupedSampler(
                self._step_batch(),
                sampler.lengths,
                seed,
                self._epoch_index,
                order=self.length_group_order,
                group_steps=self.length_group_steps,
            )
        return sampler

    def _epoch_index(self) -> int:
        # The epoch the training loop is in, as Trainer counts it (also right after a resume: state.epoch
        # is restored from the checkpoint before the epoch's first batch is drawn).
        return math.floor(self.state.epoch or 0)

    def get_batch_samples(
        self, epoch_iterator: Iterator[dict[str, Any]], num_batches: int, device: torch.device
    ) -> tuple[list[dict[str, Any]], torch.Tensor | int | None]:
        """Trainer's micro-batches of one optimizer step; the rows accelerate repeats leave the loss.

        With N processes and a training set that is not a multiple of N x the per-device batch,
        accelerate's ``even_batches`` fills the last batch of the epoch with the epoch's first examples,
        so that every process runs the same number of steps (fewer batches on one process would hang
        DDP). Those repeats get ``IGNORE_INDEX`` labels here, before Trainer counts the step's labels, so
        they add neither to the loss nor to ``num_items_in_batch``: N processes x batch b then equal
        1 process x batch N*b also at the last step of an epoch.
        """
        batches = []
        for _ in range(num_batches):
            try:
                batches.append(self._without_repeats(next(epoch_iterator)))
            except StopIteration:
                break
        return batches, self._get_num_items_in_batch(batches, device)

    def _without_repeats(self, batch: dict[str, Any]) -> dict[str, Any]:
        accelerator = self.accelerator
        state = accelerator.gradient_state
        if accelerator.num_processes <= 1 or not state.end_of_dataloader or "labels" not in batch:
            return batch
        if state.remainder <= 0 or not accelerator.even_batches or accelerator.split_batches:
            return batch  # no padding, or padding this does not undo (dispatched / split batches)
        # the last round of batches, read across processes in rank order, holds the `remainder` real rows
        # first (accelerate deals consecutive batches to the processes in turn), then the repeats
        labels = batch["labels"]  # [B, S]
        keep = max(0, state.remainder - accelerator.process_index * self.args.train_batch_size)
        if keep >= labels.shape[0]:
            return batch
        labels = labels.clone()
        labels[keep:] = IGNORE_INDEX
        return {**batch, "labels": labels}

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels")  # [B, S], IGNORE_INDEX where excluded
        outputs = model(**inputs)
        logits = outputs.logits  # [B, S, C]
        if self.alpha is not None and self.alpha.device != logits.device:
            self.alpha = self.alpha.to(logits.device)
        name, params = self.current_loss(training=model.training)
        loss_sum = compute_loss(name, logits, labels, reduction="sum", **params)
        per_token = model.training and self.loss_config.loss_normalization == "dataset"
        divisor = self.mean_tokens_per_step() if per_token else None
        if divisor is not None:
            # a constant divisor: every token of the epoch weighs the same, whatever its step's token count
            loss = loss_sum / divisor
            if self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        elif num_items_in_batch is None:
            # no global count (no labels seen by Trainer's counter): local mean, scaled for accumulation
            loss = loss_sum / (labels != IGNORE_INDEX).sum().clamp(min=1)
            if model.training:
                loss = loss / self.current_gradient_accumulation_steps
        else:
            count = (
                num_items_in_batch.clamp(min=1)
                if torch.is_tensor(num_items_in_batch)
                else max(num_items_in_batch, 1)
            )
            loss = loss_sum / count
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        if model.training and not torch.isfinite(loss.detach()).all():
            self._diverged(name, logits, labels)
        return (loss, outputs) if return_outputs else loss

    def _diverged(self, name: str, logits: torch.Tensor, labels: torch.Tensor) -> None:
        # the step being computed, numbered as the log numbers it (1 for the first); the saved model is the
        # one that step started from, after global_step steps, named like Trainer's checkpoint-N
        done = self.state.global_step
        cause = (
            "the model's logits contain NaN/inf"
            if not torch.isfinite(logits.detach()).all()
            else f"the {name} loss"
        )
        path = f"{self.args.output_dir}/checkpoint-diverged-{done}"
        try:
            self.save_model(path)
        except Exception as err:  # pragma: no cover - best effort before stopping
            logger.error("could not save a checkpoint before stopping: %s", err)
        raise LossDivergedError(
            f"step {done + 1}: the training loss is NaN or infinite ({cause}); the model before this step "
            f"saved to {path}. "
            "Try a lower learning_rate, fp32 instead of fp16, or max_grad_norm."
        )

    # ---- train_loss over the whole run, also when resumed ------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; a resumed run's ``train_loss`` also counts the steps before the checkpoint."""
        self._resumed_loss: float | None = None
        if isinstance(resume_from_checkpoint, str):
            path = os.path.join(resume_from_checkpoint, TRAIN_LOSS_FILE)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    self._resumed_loss = float(json.load(handle)["total_loss"])
            else:
                logger.warning(
                    "%s has no %s: train_loss averages the resumed steps only", path, TRAIN_LOSS_FILE
                )
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):
            # the sum of the step losses so far (logged ones and the not yet logged tail), for train_loss
            total = self._total_loss_scalar + float(self._tr_loss.item()) + (self._resumed_loss or 0.0)
            from nerfocal.io import write_json

            write_json(
                os.path.join(folder, TRAIN_LOSS_FILE), {"total_loss": total, "step": self.state.global_step}
            )

    def _finalize_training(self, trial: Any, num_train_samples: int, start_time: float) -> Any:
        # Trainer divides the summed step losses since the resume by the steps since the resume; make
        # it the mean over every step of the run (as the uninterrupted run logs it)
        if getattr(self, "_resumed_loss", None) is not None and self.state.global_step > 0:
            self._total_loss_scalar += float(self._tr_loss.item())
            self._tr_loss -= self._tr_loss
            since = max(self.state.global_step - self._initial_global_step, 0.001)
            whole = (self._resumed_loss or 0.0) + self._total_loss_scalar
            self._total_loss_scalar = whole / self.state.global_step * since
        return super()._finalize_training(trial, num_train_samples, start_time)

    # ---- atomic saves (docs/robustness.md) ----------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save into a temporary folder inside ``output_dir``, then rename each file into place.

        A crash while writing never leaves a truncated ``model.safetensors`` / ``config.json`` /
        tokenizer file under its final name; weight files of an earlier save that this one does not
        write (other shards) are removed, as ``save_pretrained`` does.
        """
        import shutil
        import tempfile

        folder = str(output_dir if output_dir is not None else self.args.output_dir)
        if not self.args.should_save:  # non-writing ranks only take part in collectives
            super()._save(folder, state_dict)
            return
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(dir=folder, prefix=".saving-")
        try:
            super()._save(staging, state_dict)
            written = set(os.listdir(staging))
            for name in os.listdir(folder):
                if name not in written and name.startswith("model") and ".safetensors" in name:
                    os.remove(os.path.join(folder, name))
            for name in sorted(written):
                target = os.path.join(folder, name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(os.path.join(staging, name), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
