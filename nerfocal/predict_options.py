"""Command-line options of a :class:`nerfocal.predict.Predictor`, shared by predict, evaluate and report.

A library module (the commands in :mod:`nerfocal.cli` never import each other): each command adds these
options to its parser and builds its predictor with :func:`predictor_from_args`.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_model_arguments(parser: argparse.ArgumentParser, *, default_decode: str) -> None:
    """Options shared by ``predict`` and ``evaluate`` (after ``--model`` and the input options)."""
    decode_help = {
        "viterbi": "viterbi: best BIO-valid tag sequence (default); argmax: raw per-word argmax",
        "argmax": "argmax: per-word argmax of the first sub-word, exactly as the training evaluation "
        "(default, so the numbers match it); viterbi: best BIO-valid tag sequence",
    }[default_decode]
    parser.add_argument("--decode", choices=("viterbi", "argmax"), default=default_decode, help=decode_help)
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1, ...; auto: a GPU if visible (default)"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=4096,
        help="padded sub-word tokens per forward pass (default 4096)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per window, specials included (default: the training max_length, else the model's)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="tokens shared by consecutive windows of long inputs (default 1/4)",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="ignore the calibration temperature saved with the model",
    )
    parser.add_argument(
        "--o-bias",
        type=_o_bias,
        default=None,
        metavar="B",
        help="margin taken off O's log-probability before decoding: more entities above 0, fewer below "
        "(default: the o_bias saved with the model, else 0)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow custom model code shipped in the model directory",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="encoder precision: float32 (default, exact); bfloat16 is ~1.7x faster on CPUs with native "
        "bf16 and changes a few predictions",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto (default): ONNX Runtime for a directory written by `nerfocal export`, else PyTorch",
    )
    parser.add_argument("--encoding", default="utf-8", help="input file encoding (default utf-8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def _sub_words(value: str) -> int:
    """``--context-size`` / ``--context-pack``: an integer >= 0 (argparse names the flag in its error)."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 (sub-words), got {value!r}")
    return int(value)


def add_context_arguments(parser: argparse.ArgumentParser) -> None:
    """Document context options of ``predict``, ``evaluate`` and ``report --data`` (docs/context.md)."""
    parser.add_argument(
        "--context-size",
        type=_sub_words,
        default=None,
        metavar="N",
        help="sub-words of document context on each side of a sentence (default: the training run's "
        "context_size, saved with the model; 0: none)",
    )
    parser.add_argument(
        "--context-pack",
        type=_sub_words,
        default=None,
        metavar="N",
        help="with context, read consecutive sentences of a document of at most N sub-words in all in one "
        "window: faster (docs/context.md#packing); default: the training run's context_pack (0: each "
        "sentence in a window of its own)",
    )
    parser.add_argument(
        "--document-boundary",
        default=None,
        metavar="MARKER",
        help="CoNLL input: lines that start a document besides -DOCSTART- ones: a first-column marker or "
        "'re:PATTERN'; 'sentence': each sentence alone (default: -DOCSTART- only; no marker: one document)",
    )


def check_document_boundary(value: str | None) -> None:
    """A bad ``--document-boundary`` (an invalid regex...) as one error line naming the flag."""
    from nerfocal.conll import boundary_rule

    try:
        boundary_rule(value)
    except ValueError as err:
        raise ValueError(f"--{err}".replace("document_boundary", "document-boundary", 1)) from None


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory written by training")


def predictor_loader(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A picklable callable that builds the Predictor of the shared options (for worker processes)."""
    import functools

    from nerfocal.predict import Predictor

    return functools.partial(Predictor.from_pretrained, args.model, **predictor_kwargs(args), **kwargs)


def predictor_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :meth:`Predictor.from_pretrained` set by :func:`add_model_arguments`."""
    return {
        "trust_remote_code": args.trust_remote_code,
        "device": args.device,
        "decode": args.decode,
        "temperature": not args.no_temperature,
        "max_length": args.max_length,
        "stride": args.stride,
        "batch_tokens": args.batch_tokens,
        "dtype": args.dtype,
        "backend": args.backend,
        "context_size": getattr(args, "context_size", None),  # predict / evaluate only
        "context_pack": getattr(args, "context_pack", None),
        "o_bias": getattr(args, "o_bias", None),
    }


def _o_bias(text: str) -> float:
    """``--o-bias``: a finite number (argparse turns the ValueError into a one-line usage error)."""
    from nerfocal.decision import parse_o_bias

    if text.strip() == "auto":
        raise argparse.ArgumentTypeError("'auto' is chosen at training (o_bias auto); give a number here")
    try:
        return float(parse_o_bias(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("o_bias: ")) from None


def predictor_from_args(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A :class:`nerfocal.predict.Predictor` from the shared options."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return predictor_loader(args, **kwargs)()
