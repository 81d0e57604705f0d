"""``NerTrainingArguments``: ``TrainingArguments`` with nerfocal's defaults and early stopping."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import SaveStrategy

# the dev metrics nerfocal's evaluation logs (``eval_`` + name), for ``metric_for_best_model``; the
# viterbi_ ones decode as ``nerfocal predict`` does (constrained Viterbi), the others read the argmax
DEV_METRICS = (
    "f1", "precision", "recall", "macro_f1", "accuracy",
    "viterbi_f1", "viterbi_precision", "viterbi_recall", "viterbi_macro_f1",
    "ece", "nll", "loss",
)  # fmt: skip
LOWER_IS_BETTER = ("ece", "nll", "loss")


@dataclass
class NerTrainingArguments(TrainingArguments):
    """``transformers.TrainingArguments`` with nerfocal's defaults as field defaults (so ``--help`` is true),
    plus early stopping on dev entity F1.

    Changed defaults: batch 32 (eval 64), length-grouped batches, no checkpoints, logging every 50
    steps, real (non-padding) training tokens counted, output in ``outputs/run``.
    """

    output_dir: str | None = field(
        default="outputs/run", metadata={"help": "Where the model, reports and checkpoints are written."}
    )
    per_device_train_batch_size: int = field(
        default=32, metadata={"help": "Training batch size per device (nerfocal default 32)."}
    )
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "Evaluation batch size per device (nerfocal default 64)."}
    )
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "group_by_length (nerfocal default: batches of similar length, 2.3x faster), random or "
            "sequential."
        },
    )
    save_strategy: SaveStrategy | str = field(
        default="no", metadata={"help": "Checkpoint strategy: no (nerfocal default), steps, epoch, best."}
    )
    logging_steps: float = field(default=50, metadata={"help": "Log every N steps (nerfocal default 50)."})
    include_num_input_tokens_seen: str | bool = field(
        default="non_padding",
        metadata={"help": "Count training tokens: non_padding (nerfocal default), all, no."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace the run already in output_dir (its model, results, reports and checkpoints are "
            "removed first). Without it such an output_dir is refused, unless resuming."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop after N evaluations without a gain in metric_for_best_model (default: dev entity "
            "F1), and keep the best checkpoint (loaded at the end). Sets evaluation and saving per epoch "
            "unless eval_strategy steps is given. Default: 2 (and up to 10 epochs) when there is a dev set "
            "and none of num_train_epochs, max_steps and this is set; 0: off."
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={
            "help": "Smallest gain in metric_for_best_model that counts as an improvement (early stopping)."
        },
    )

    # True when early stopping came from nerfocal's default schedule, not from the user (nerfocal.schedule)
    default_schedule: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience < 0:
                raise ValueError(
                    "early_stopping_patience: expected an integer >= 1, or 0 for no early stopping, got "
                    f"{self.early_stopping_patience!r}"
                )
            self.early_stopping_patience = self.early_stopping_patience or None  # 0: off
        if self.early_stopping_patience is not None:
            strategy = str(getattr(self.eval_strategy, "value", self.eval_strategy))
            if strategy == "no":
                strategy = "epoch"
            self.eval_strategy = strategy
            self.save_strategy = strategy
            if strategy == "steps" and self.eval_steps:
                self.save_steps = self.eval_steps
            self.load_best_model_at_end = True
            # a resumed run continues the count of evaluations without a gain (transformers resets it)
            self.restore_callback_states_from_checkpoint = True
            self.metric_for_best_model = self.metric_for_best_model or "f1"
        if self.metric_for_best_model:
            name = self.metric_for_best_model.removeprefix("eval_")
            if name not in DEV_METRICS:
                raise ValueError(
                    f"metric_for_best_model: expected one of {', '.join(DEV_METRICS)} (the dev metrics "
                    f"nerfocal logs), got {self.metric_for_best_model!r}"
                )
            if self.greater_is_better is None:
                self.greater_is_better = name not in LOWER_IS_BETTER
        super().__post_init__()
