"""The output directory of a training run: refuse to mix two runs, and never lose the final model.

* :func:`prepare_output_dir`: an ``output_dir`` that holds another run (its model, results, reports or
  ``checkpoint-N`` folders) is refused unless ``--overwrite_output_dir true`` is given, which first
  removes that run's artefacts (files nerfocal and ``Trainer`` write, and only those). Resuming
  (``--resume_from_checkpoint``) continues the run that is there.
* :func:`save_final_model`: a final save that fails (a full disk, a quota) is retried once into a
  rescue folder, ``$NERFOCAL_RESCUE_DIR`` or ``<output_dir>.rescue``; the error names the space needed,
  the space free and the last complete checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RESCUE_ENV", "FinalSaveError", "prepare_output_dir", "run_artefacts", "save_final_model"]

RESCUE_ENV = "NERFOCAL_RESCUE_DIR"

# What a run writes into output_dir (Trainer, save_run, the report and the card); nothing else is removed
_RUN_FILES = re.compile(
    r"(model(-\d+-of-\d+)?\.safetensors(\.index\.json)?|config\.json|generation_config\.json"
    r"|tokenizer(_config)?\.json|special_tokens_map\.json|vocab\.(txt|json)|merges\.txt"
    r"|sentencepiece\.bpe\.model|spiece\.model|added_tokens\.json|chat_template\.(jinja|json)"
    r"|training_args\.bin|trainer_state\.json|(all|train|eval)_results\.json|eval_report\.txt"
    r"|nerfocal_config\.yaml|predictions_\w+\.jsonl|report\.(html|md)|README\.md|pause\.pid)"
)
_RUN_DIRS = re.compile(r"(checkpoint-(diverged-)?\d+|runs|report|\.saving-.*)")
# Any of these marks a folder as holding a run (README.md or config.json alone may be the user's)
_MARKERS = re.compile(
    r"(model(-\d+-of-\d+)?\.safetensors|trainer_state\.json|eval_results\.json|nerfocal_config\.yaml)"
)


class FinalSaveError(OSError):
    """The final model could not be written; the message says what to free and where a copy is."""


def run_artefacts(folder: Path) -> list[Path]:
    """The files and folders of an earlier run in ``folder`` (empty when it holds none or does not exist)."""
    if not folder.is_dir():
        return []
    entries = sorted(folder.iterdir())
    is_run = any(
        (p.is_file() and _MARKERS.fullmatch(p.name))
        or (p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name))
        for p in entries
    )
    if not is_run:
        return []
    return [p for p in entries if (_RUN_DIRS if p.is_dir() else _RUN_FILES).fullmatch(p.name)]


def prepare_output_dir(args: Any, resume: str | None) -> None:
    """Refuse an ``output_dir`` holding another run, or clear it with ``overwrite_output_dir``.

    Every process checks; process 0 removes, between two barriers, so no process sees a half-cleared folder.

    Raises:
        ValueError: the folder holds another run and neither resuming nor overwriting was asked for.
    """
    out = Path(args.output_dir)
    overwrite = bool(getattr(args, "overwrite_output_dir", False))
    found = run_artefacts(out)
    if found and overwrite and resume:
        raise ValueError(
            f"--output_dir {out}: expected either --overwrite_output_dir or --resume_from_checkpoint, "
            "got both (overwriting would remove the checkpoints to resume from)"
        )
    if found and not overwrite and not resume:
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise ValueError(
            f"--output_dir {out}: holds another run ({names}); pass --resume_from_checkpoint auto to "
            "continue it, --overwrite_output_dir true to replace it, or choose another --output_dir"
        )
    _barrier(args)
    if found and overwrite and args.process_index == 0:
        logger.warning("overwrite_output_dir: removing the earlier run in %s (%d entries)", out, len(found))
        for path in found:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    _barrier(args)


def _barrier(args: Any) -> None:
    import torch.distributed as dist

    if args.world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_final_model(trainer: Any, out: Path) -> None:
    """``trainer.save_model(out)``; on an ``OSError`` (ENOSPC, EDQUOT, ...) retry once into the rescue folder.

    ``FocalLossTrainer._save`` writes into a staging folder and renames, so a failed save leaves no
    truncated model under its final name. All processes learn of a failure (an all-reduce), so none of
    them goes on to evaluate while process 0 is rescuing.

    Raises:
        FinalSaveError: the save failed (one line: output dir, space needed and free, where a copy is,
            the last complete checkpoint). Raised on every process.
    """
    error: OSError | None = None
    try:
        trainer.save_model(str(out))  # every process takes part (FSDP/DeepSpeed); rank 0 writes
    except OSError as err:
        error = err
    if not _any_process(trainer, error is not None):
        return
    message = "the final save failed on process 0"
    if trainer.args.process_index == 0 and error is not None:
        message = _rescue(trainer, out, error)
    elif error is not None:
        message = f"{out}: the final model could not be written ({error.strerror or error})"
    trainer.accelerator.wait_for_everyone()
    raise FinalSaveError(message)


def _any_process(trainer: Any, flag: bool) -> bool:
    import torch
    import torch.distributed as dist

    if trainer.args.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor(int(flag), device=trainer.args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _rescue(trainer: Any, out: Path, error: OSError) -> str:
    """Save into the rescue folder; the one-line message for the user either way."""
    from nerfocal.resume import resolve_resume_checkpoint

    needed = sum(p.numel() * p.element_size() for p in trainer.model.state_dict().values())
    free = shutil.disk_usage(out if out.exists() else out.parent).free
    rescue = Path(os.environ.get(RESCUE_ENV) or f"{out}.rescue")
    try:
        checkpoint = resolve_resume_checkpoint("auto", str(out))
        last = f"the last complete checkpoint is {checkpoint}"
    except FileNotFoundError:
        last = "there is no complete checkpoint (save_strategy no)"
    head = (
        f"{out}: the final model could not be written ({error.strerror or error}): it needs about "
        f"{_mb(needed)} and {_mb(free)} are free there"
    )
    try:
        trainer.save_model(str(rescue))
    except OSError as again:
        return (
            f"{head}; saving it to {rescue} failed too ({again.strerror or again}); {last}. Free space, "
            f"or set {RESCUE_ENV} to a folder on another disk, and train again"
        )
    return f"{head}; saved it to {rescue} instead (no evaluation was run); {last}"


def _mb(size: float) -> str:
    return f"{size / 2**20:.1f} MB"
