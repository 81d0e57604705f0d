"""The focal-loss schedule as logged scalars, for TensorBoard, W&B, MLflow... (``report_to``).

:class:`LossScheduleCallback` adds to every training log (the one carrying ``loss``):

- ``gamma``: the focusing parameter the last optimizer step used, after the ramp (0 during the
  cross-entropy warm-up, which is focal loss with gamma 0); for ``focal_adaptive``, ``gamma_0``,
  ``gamma_1``, ... one per confidence band;
- ``ce_warmup``: 1 while the last step was in the cross-entropy warm-up, else 0;
- ``loss_switch_step``: the step at which the warm-up ends (only when there is a warm-up).

The reporting callbacks prefix training keys with ``train/``, so TensorBoard shows ``train/gamma``,
``train/ce_warmup`` and ``train/loss_switch_step``. ``state.log_history`` (trainer_state.json) is
not changed: the Trainer copies a log into it before calling the callbacks.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class LossScheduleCallback(TrainerCallback):
    """Adds the loss schedule of a :class:`~nerfocal.trainer.FocalLossTrainer` to its logs.

    Callbacks receive the model and optimizer, not the trainer, so the trainer is passed here;
    install with :func:`add_loss_schedule_callback`, which puts it before the reporting callbacks.

    Args:
        trainer: the ``FocalLossTrainer`` whose ``current_loss()`` gives the schedule.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self._last: dict[str, float] = {}

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # the same call compute_loss makes for this step (state.global_step = the step about to run)
        name, params = self.trainer.current_loss()
        self._last = schedule_scalars(name, params, self.trainer.loss_config)
        warmup = self.trainer.ce_warmup_total_steps()
        if warmup:
            self._last["loss_switch_step"] = float(warmup)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs is not None and "loss" in logs and self._last:
            logs.update(self._last)


def schedule_scalars(name: str, params: dict[str, Any], loss_config: Any) -> dict[str, float]:
    """The logged scalars of one step that used loss ``name`` with ``params`` (``current_loss()``).

    Args:
        name: the step's loss (``"ce"`` during the warm-up).
        params: its parameters (``gamma`` or ``gammas`` after the ramp).
        loss_config: the run's :class:`~nerfocal.config.LossConfig`.
    """
    configured = loss_config.loss
    scalars = {"ce_warmup": 1.0 if name == "ce" and configured != "ce" else 0.0}
    if configured == "focal":
        scalars["gamma"] = float(params.get("gamma", 0.0))
    elif configured == "focal_adaptive":
        gammas = params.get("gammas") or (0.0,) * len(loss_config.adaptive_params()[0])
        scalars.update({f"gamma_{i}": float(g) for i, g in enumerate(gammas)})
    return scalars


def add_loss_schedule_callback(trainer: Any) -> LossScheduleCallback:
    """Create the callback and put it first, so TensorBoard & co. see the scalars it adds."""
    callback = LossScheduleCallback(trainer)
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback
