"""Stop a training run cleanly on SIGTERM/SIGINT and find the checkpoint to resume it from.

A checkpoint written by ``Trainer`` holds the weights, optimizer, scheduler, RNG states (one file per
process) and the step, so that ``--resume_from_checkpoint`` continues as if never interrupted (see
:mod:`nerfocal.trainer` for the data order).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class StopOnSignal(TrainerCallback):
    """SIGTERM / SIGINT during training: finish the step, save a full checkpoint, stop.

    The handlers are installed at ``on_train_begin`` and the previous ones restored at ``on_train_end``
    (call :meth:`uninstall` too if ``train`` may raise). A signal only sets a flag; at the end of each
    optimizer step the processes agree on it (an all-reduce, so that all of them stop at the same step even
    when only one was signalled), then Trainer saves ``checkpoint-N`` (weights, optimizer, scheduler, RNG
    states) and leaves the training loop. A repeat of the signal within ``grace_seconds`` (launchers such as
    torchrun relay the terminal's Ctrl-C once more) is ignored; a later one aborts at once.

    After ``train`` returns, :attr:`signum` is the signal that stopped training (None if none did) and
    :attr:`stopped_at` the step of the checkpoint.
    """

    def __init__(
        self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT), grace_seconds: float = 2.0
    ) -> None:
        self.signals = tuple(signals)
        self.grace_seconds = grace_seconds
        self.received: int | None = None  # signal caught by this process
        self.signum: int | None = None  # signal that stopped training (agreed by all processes)
        self.stopped_at: int | None = None
        self._received_at = 0.0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if self._previous or threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received, self._received_at = signum, time.monotonic()
            logger.warning(
                "%s received: stopping after this step and saving a checkpoint (send it again to abort)", name
            )
        elif time.monotonic() - self._received_at > self.grace_seconds:
            logger.warning("%s received again: aborting without a checkpoint", name)
            self.uninstall()
            signal.raise_signal(signum)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.received = self.signum = self.stopped_at = None
        self.install()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.uninstall()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        signum = self.received or 0
        if args.world_size > 1 and torch.distributed.is_initialized():
            flag = torch.tensor(signum, device=args.device)  # NCCL needs it on the device
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            signum = int(flag.item())
        if signum:
            self.signum, self.stopped_at = signum, state.global_step
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False  # leave quickly: schedulers grant a short grace period


def resolve_resume_checkpoint(value: str | None, output_dir: str) -> str | None:
    """``resume_from_checkpoint`` -> a checkpoint folder; ``auto``: the latest complete one in ``output_dir``.

    A checkpoint is complete once ``trainer_state.json`` is written (Trainer writes it last), so a
    folder left half-written by a kill is skipped.

    Raises:
        FileNotFoundError: ``auto`` without any complete checkpoint, or a path that is not a checkpoint.
    """
    if value is None or value == "":
        return None
    if value == "auto":
        folder = Path(output_dir)
        steps = sorted(
            (int(m.group(1)), p)
            for p in (folder.iterdir() if folder.is_dir() else [])
            if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and p.is_dir()
        )
        for _, path in reversed(steps):
            if (path / "trainer_state.json").is_file():
                return str(path)
            logger.warning("%s is incomplete (no trainer_state.json); skipping it", path)
        raise FileNotFoundError(
            f"resume_from_checkpoint auto: no checkpoint-N folder with a trainer_state.json in {folder}"
        )
    if not (Path(value) / "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"resume_from_checkpoint: expected a checkpoint folder holding trainer_state.json, got {value}"
        )
    return value
