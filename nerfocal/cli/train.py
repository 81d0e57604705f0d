"""Fine-tune an encoder for NER with focal loss.

    nerfocal train configs/X.yaml [--option value ...]
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/train_ner.py configs/X.yaml
    nerfocal train configs/X.yaml --resume_from_checkpoint auto    # after SIGTERM/Ctrl-C or a crash

Every option is a key of the YAML file and a command-line flag (see README, "Options"). SIGTERM or SIGINT
during training saves output_dir/checkpoint-N and exits with 143 or 130 (see README, "Scaling out").
"""

from __future__ import annotations

import os
import sys


def use_cpu_without_accelerator() -> None:
    """Processes started by ``accelerate launch``/``torchrun`` on a machine without GPU: train on CPU (gloo).

    transformers forms a CPU process group only when told to (``use_cpu`` or ``ACCELERATE_USE_CPU``);
    otherwise each process would silently train alone on all the data, as one process does.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch

    accelerator = getattr(torch, "accelerator", None)
    available = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if not available:
        os.environ["ACCELERATE_USE_CPU"] = "true"


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save; returns the exit status (0 ok, 1 loss diverged or final save failed, 2 bad
    input, 128 + N stopped by signal N)."""
    from nerfocal.config import build_parser, parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        build_parser().print_help()
        return 0
    try:
        use_cpu_without_accelerator()  # before TrainingArguments sets up the devices
        from nerfocal.training import train

        return train(*parse_config(argv)).status
    except (ValueError, FileNotFoundError) as err:
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the final save failed (a full disk): one line, where a copy and a checkpoint are
        from nerfocal.run_dir import FinalSaveError

        if not isinstance(err, FinalSaveError):
            raise
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # a NaN/inf loss: one line naming the step and the saved checkpoint
        from nerfocal.trainer import LossDivergedError

        if not isinstance(err, LossDivergedError):
            raise
        print(f"nerfocal train: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
