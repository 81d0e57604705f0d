"""Checks of a training run that take seconds and come before the data is read and tokenized.

:func:`check_run_sources` is the first thing :func:`nerfocal.training.train` does: a misspelled model path,
a hub name while offline, pickle-only weights, a broken ``config.json``, an ``output_dir`` that is a file
and a corrupt checkpoint to resume from are one-line errors at once, not tracebacks minutes later.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("nerfocal")

__all__ = ["check_run_sources"]


def check_run_sources(model_cfg: Any, args: Any) -> None:
    """Fail in seconds, before the data is read: the model source (:func:`nerfocal.loading.
    check_model_source`), an ``output_dir`` that is (or is under) a file, a corrupt checkpoint to resume
    from. Also warns about ``learning_rate: 0`` and turns off pinned memory on a CPU run."""
    from nerfocal.loading import check_checkpoint, check_model_source
    from nerfocal.resume import resolve_resume_checkpoint

    out = Path(args.output_dir)
    if args.resume_from_checkpoint not in (None, ""):
        # a missing checkpoint is the first thing to say (before the model source)
        checkpoint = resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
        if checkpoint:
            check_checkpoint(checkpoint)
    check_model_source(model_cfg)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"output_dir: {folder} is a file; expected a directory (or a new path)")
            break
    if args.learning_rate == 0:
        logger.warning("learning_rate is 0: the weights will not change (set learning_rate, e.g. 5e-5)")
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if not (accelerator.is_available() if accelerator is not None else torch.cuda.is_available()):
        args.dataloader_pin_memory = False  # no device to pin for: avoids torch's warning on every CPU run
