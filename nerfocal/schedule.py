"""The training schedule ``nerfocal train`` uses when the user sets none: the convergence protocol.

With a development set, a run that sets neither ``num_train_epochs``, ``max_steps`` nor
``early_stopping_patience`` trains up to :data:`DEFAULT_MAX_EPOCHS` epochs with early stopping on dev
entity F1 (patience :data:`DEFAULT_PATIENCE`) and keeps the best checkpoint: the protocol every row of
the convergence benchmark was measured with (docs/benchmarks.md). Setting ``early_stopping_patience``
alone also raises the epoch ceiling to :data:`DEFAULT_MAX_EPOCHS`, since transformers' 3 epochs would
end most runs before the patience runs out. Without a dev set nothing changes (transformers' 3 epochs).
``early_stopping_patience 0`` turns early stopping off.
"""

from __future__ import annotations

import logging
from typing import Any

DEFAULT_PATIENCE = 2
DEFAULT_MAX_EPOCHS = 10.0
_BUDGET = frozenset({"num_train_epochs", "max_steps"})
_UNSET = object()


def given_options(parser: Any, argv: list[str], yaml_keys: set[str]) -> set[str]:
    """The options the user set: keys of the YAML file and flags on the command line.

    ``parser`` is a fresh parser of the same options (its defaults are overwritten here); flags are
    found by argparse itself, so abbreviations and ``--flag=value`` count.
    """
    parser.set_defaults(**{a.dest: _UNSET for a in parser._actions if a.dest != "help"})
    namespace, _ = parser.parse_known_args(argv)
    return set(yaml_keys) | {k for k, v in vars(namespace).items() if v is not _UNSET}


def has_dev_source(values: dict[str, Any]) -> bool:
    """Whether the options (``vars`` of a DataConfig, or parsed values) name a development set: a file,
    or a dataset that may hold one."""
    return bool(values.get("validation_file") or values.get("dataset_name") or values.get("dataset_path"))


def apply_default_schedule(values: dict[str, Any], given: set[str]) -> bool:
    """Fill in the default schedule in the parsed ``values`` (in place); True if early stopping came
    from the default rather than from the user."""
    if not has_dev_source(values):
        return False
    by_default = "early_stopping_patience" not in given and not given & _BUDGET
    if by_default:
        values["early_stopping_patience"] = DEFAULT_PATIENCE
        if "save_total_limit" not in given:
            values["save_total_limit"] = 1  # Trainer keeps the best checkpoint (and the last, to resume)
    if values.get("early_stopping_patience") and not given & _BUDGET:
        values["num_train_epochs"] = DEFAULT_MAX_EPOCHS
    return by_default


def settle_default_schedule(args: Any, has_dev: bool) -> None:
    """Once the data is read: a default schedule whose dataset has no dev split falls back to a plain
    run (transformers' 3 epochs, no evaluation, no checkpoints); the main process says which it runs."""
    if not getattr(args, "default_schedule", False):
        return
    log = logging.getLogger("nerfocal.training") if args.process_index == 0 else None
    if not has_dev:
        from transformers.trainer_utils import IntervalStrategy, SaveStrategy

        args.default_schedule, args.early_stopping_patience, args.num_train_epochs = False, None, 3.0
        args.eval_strategy, args.save_strategy = IntervalStrategy.NO, SaveStrategy.NO
        args.load_best_model_at_end, args.save_total_limit, args.metric_for_best_model = False, None, None
        if log:
            log.info("no dev split in the data: 3 epochs without early stopping (set num_train_epochs)")
        return
    if log:
        log.info(
            "no schedule set: up to %g epochs with early stopping on dev %s (patience %d), the best "
            "checkpoint kept; set num_train_epochs or max_steps for a fixed budget, early_stopping_patience "
            "0 for none",
            args.num_train_epochs, args.metric_for_best_model, args.early_stopping_patience,
        )  # fmt: skip


def require_dev_set(dev: Any) -> None:
    """Early stopping the user asked for, without a development set: a one-line error."""
    if dev is None:
        raise ValueError(
            "early_stopping_patience: needs a development set (validation_file, or a dataset with a "
            "validation split) to pick the best checkpoint"
        )


__all__ = [
    "DEFAULT_MAX_EPOCHS",
    "DEFAULT_PATIENCE",
    "apply_default_schedule",
    "given_options",
    "has_dev_source",
    "require_dev_set",
    "settle_default_schedule",
]
