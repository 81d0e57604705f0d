"""Export a trained model to ONNX (optionally int8) for fast CPU inference (docs/export.md).

Examples:
    nerfocal export --model outputs/sample --output outputs/sample-onnx
    nerfocal export --model outputs/sample --output outputs/sample-int8 --quantize int8
    nerfocal predict --model outputs/sample-int8 --input news.txt     # ONNX Runtime, same output

The export checks itself against PyTorch on a few inputs and fails with a clear message if the
logits (float32) or the argmax (int8) differ beyond the tolerance. Needs `pip install nerfocal[onnx]`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory written by training")
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="new or empty directory for model.onnx"
    )
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    parser.add_argument(
        "--quantize", choices=("int8",), default=None, help="int8: dynamic int8 MatMul/Gemm weights"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def run(args: argparse.Namespace) -> int:
    from nerfocal.export import export_model

    try:
        report = export_model(
            args.model, args.output, format=args.format, quantize=args.quantize, opset=args.opset,
            check=not args.no_check,
        )  # fmt: skip
    except ImportError as err:
        print(f"nerfocal export: error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
