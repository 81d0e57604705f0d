"""Export a trained model to ONNX (optionally int8) for fast CPU inference (docs/export.md).

Examples:
    nerfocal export --model outputs/sample --output outputs/sample-onnx
    nerfocal export --model outputs/sample --output outputs/sample-int8 --quantize int8
    nerfocal export --model outputs/sample --output outputs/sample-int8s --quantize int8 \\
        --int8-mode static --calibration-file data/train.conll
    nerfocal predict --model outputs/sample-int8 --input news.txt     # ONNX Runtime, same output

The export checks itself against PyTorch on a few inputs and fails with a clear message if the
logits (float32) or the argmax (int8) differ beyond the tolerance. Needs `pip install nerfocal[onnx]`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nerfocal.quantize import Int8Options

INT8_FLAGS = {  # option -> Int8Options field; each needs --quantize int8
    "int8_mode": "mode",
    "int8_per_channel": "per_channel",
    "int8_reduce_range": "reduce_range",
    "int8_weight_type": "weight_type",
    "int8_keep_float": "keep_float",
    "calibration_file": "calibration_file",
    "calibration_format": "calibration_format",
    "calibration_sentences": "calibration_sentences",
    "calibration_method": "calibration_method",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nerfocal.quantize import CALIBRATION_METHODS, INT8_MODES, WEIGHT_TYPES

    parser.add_argument("--model", required=True, metavar="DIR", help="model directory written by training")
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="new or empty directory for model.onnx"
    )
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="int8: quantize the weight products (default recipe: dynamic, per-channel weights, "
        "first encoder layer kept float32; see docs/export.md)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="do not fuse a BERT graph into ONNX Runtime's Attention/SkipLayerNorm/BiasGelu kernels",
    )
    group = parser.add_argument_group("int8 options (with --quantize int8; the defaults are the recipe)")
    group.add_argument("--int8-mode", choices=INT8_MODES, default=None, help="dynamic (default) or static")
    group.add_argument(
        "--int8-per-channel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one weight scale per output channel (default) or, with --no-int8-per-channel, per matrix",
    )
    group.add_argument(
        "--int8-reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights, for CPUs without VNNI (default: off)",
    )
    group.add_argument(
        "--int8-weight-type", choices=WEIGHT_TYPES, default=None, help="qint8 (default) or quint8 (slower)"
    )
    group.add_argument(
        "--int8-keep-float",
        nargs="+",
        default=None,
        metavar="NAME",
        help="weight products kept float32: first_layer (default), last_layer, head, module names "
        "(bert.encoder.layer.3 ...), or none",
    )
    group.add_argument(
        "--calibration-file", default=None, metavar="FILE", help="static: sentences to calibrate on"
    )
    group.add_argument(
        "--calibration-format",
        choices=("conll", "text", "jsonl"),
        default=None,
        help="static: conll (default; first column), text (one sentence a line) or jsonl",
    )
    group.add_argument(
        "--calibration-sentences", type=int, default=None, help="static: sentences sampled (default 300)"
    )
    group.add_argument(
        "--calibration-method", choices=CALIBRATION_METHODS, default=None, help="static: default minmax"
    )


def int8_options(args: argparse.Namespace) -> Int8Options | None:
    """The ``Int8Options`` of the flags (``None`` without --quantize int8); a flag without it is an error."""
    from nerfocal.quantize import Int8Options

    given = {
        field: getattr(args, flag) for flag, field in INT8_FLAGS.items() if getattr(args, flag) is not None
    }
    if args.quantize != "int8":
        if given:
            flag = next(f for f, v in INT8_FLAGS.items() if v in given)
            raise ValueError(f"--{flag.replace('_', '-')}: only used with --quantize int8")
        return None
    if "keep_float" in given:
        names = given["keep_float"]
        if "none" in names and len(names) > 1:
            raise ValueError(f"--int8-keep-float: expected 'none' alone or names, got {' '.join(names)}")
        given["keep_float"] = () if names == ["none"] else tuple(names)
    options = Int8Options(**given)
    options.check()
    return options


def run(args: argparse.Namespace) -> int:
    from nerfocal.export import export_model

    try:
        report = export_model(
            args.model, args.output, format=args.format, quantize=args.quantize, int8=int8_options(args),
            optimize=not args.no_optimize, opset=args.opset, check=not args.no_check,
        )  # fmt: skip
    except ImportError as err:
        print(f"nerfocal export: error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
