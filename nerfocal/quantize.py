"""int8 quantization of an exported ONNX token classifier with ONNX Runtime (used by ``nerfocal.export``).

The default recipe (``Int8Options()``) was chosen by measurement on the CoNLL-2003 MiniLM model
(docs/benchmarks.md, section "onnx"): dynamic quantization (activations quantized per batch at run
time) of the weight products (``MatMul``/``Gemm``, and ``Attention`` in a fused graph), weights
signed int8 **per output channel**, the **first encoder layer kept in float32**. LayerNorm, GELU,
Softmax and the embeddings are never quantized. ``mode="static"`` calibrates fixed activation ranges
on sentences of a file instead (QDQ format); it was less accurate on that model. See docs/export.md.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATION_METHODS",
    "INT8_MODES",
    "KEEP_FLOAT_SHORTCUTS",
    "WEIGHT_TYPES",
    "Int8Options",
    "quantize_int8",
    "read_calibration_sentences",
    "weight_modules",
]

logger = logging.getLogger(__name__)

INT8_MODES = ("dynamic", "static")
WEIGHT_TYPES = ("qint8", "quint8")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CALIBRATION_FORMATS = ("conll", "text", "jsonl")
KEEP_FLOAT_SHORTCUTS = ("first_layer", "last_layer", "head")
QUANTIZED_OPS = ["MatMul", "Gemm", "Attention"]  # the weight products; Attention only in fused graphs
_LAYER = re.compile(r"^(.*\.layer\.)(\d+)(?:\.|$)")


@dataclass(frozen=True)
class Int8Options:
    """How ``nerfocal export --quantize int8`` quantizes; the defaults are the measured recipe.

    Attributes:
        mode: ``"dynamic"`` (activation ranges per batch at run time) or ``"static"`` (ranges
            calibrated once on ``calibration_file``, QDQ format).
        per_channel: one weight scale per output channel (``False``: one per matrix).
        reduce_range: 7-bit weights (for CPUs without VNNI, where 8-bit products can saturate).
        weight_type: ``"qint8"`` (signed, ORT's fast u8s8 kernels) or ``"quint8"`` (unsigned).
        keep_float: weight products left in float32: module names (``"bert.encoder.layer.0"``
            keeps everything under it) or the shortcuts ``first_layer``, ``last_layer``, ``head``.
        calibration_file: static only: sentences to calibrate on (the training file, say).
        calibration_format: ``conll`` (first column), ``text`` (one sentence a line) or ``jsonl``.
        calibration_sentences: static only: at most this many sentences, sampled with seed 0.
        calibration_method: static only: ``minmax``, ``percentile`` (99.999) or ``entropy``.
        encoding: of the calibration file.
    """

    mode: str = "dynamic"
    per_channel: bool = True
    reduce_range: bool = False
    weight_type: str = "qint8"
    keep_float: tuple[str, ...] = ("first_layer",)
    calibration_file: str | None = None
    calibration_format: str = "conll"
    calibration_sentences: int = 300
    calibration_method: str = "minmax"
    encoding: str = "utf-8"

    def check(self) -> None:
        """``ValueError`` naming the command-line option of the first bad or inapplicable value."""
        choices = (
            ("--int8-mode", self.mode, INT8_MODES),
            ("--int8-weight-type", self.weight_type, WEIGHT_TYPES),
            ("--calibration-method", self.calibration_method, CALIBRATION_METHODS),
            ("--calibration-format", self.calibration_format, CALIBRATION_FORMATS),
        )
        for option, value, allowed in choices:
            if value not in allowed:
                raise ValueError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")
        if self.calibration_sentences < 1:
            raise ValueError(f"--calibration-sentences: expected >= 1, got {self.calibration_sentences}")
        if self.mode == "static" and not self.calibration_file:
            raise ValueError("--int8-mode static: needs --calibration-file (sentences to calibrate on)")
        if self.mode == "dynamic" and self.calibration_file:
            raise ValueError("--calibration-file: only used with --int8-mode static, got --int8-mode dynamic")

    def describe(self) -> str:
        """``dynamic, per-channel qint8 weights, float32: first_layer`` (for the report)."""
        weights = f"{'per-channel' if self.per_channel else 'per-tensor'} {self.weight_type} weights"
        parts = [self.mode, weights + (" (7-bit)" if self.reduce_range else "")]
        if self.mode == "static":
            parts.append(f"{self.calibration_method} calibration")
        parts.append(f"float32: {', '.join(self.keep_float)}" if self.keep_float else "nothing kept float32")
        return ", ".join(parts)

    def suggestions(self) -> str:
        """What to try when the int8 self-check fails with these options."""
        tips = []
        if self.mode == "static":
            tips.append("--int8-mode dynamic")
        if not self.per_channel:
            tips.append("--int8-per-channel")
        if self.reduce_range:
            tips.append("--no-int8-reduce-range")
        keep = [s for s in ("first_layer", "last_layer") if s not in self.keep_float]
        if keep:
            tips.append("--int8-keep-float " + " ".join([*self.keep_float, *keep]))
        if self.weight_type == "qint8":
            tips.append("--int8-weight-type quint8 (slower)")
        return "; ".join([*tips, "or export float32 (no --quantize)"])


def weight_modules(proto: Any, prefix: str = "") -> dict[str, str]:
    """``{node name: module name}`` of the weight products (MatMul/Gemm/Attention with constant weights).

    The module comes from the exporter's ``pkg.torch.onnx.name_scopes`` metadata (``"classifier"``,
    ``"bert.encoder.layer.0.output.dense"``) with ``prefix`` removed; a fused ``Attention`` node has
    none and is named after the attention output projection that reads it.
    """
    constants = {init.name for init in proto.graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def scope(node: Any) -> str:
        for entry in node.metadata_props:
            if entry.key == "pkg.torch.onnx.name_scopes":
                names = [
                    n for n in ast.literal_eval(entry.value) if n and not n.startswith(("linear", "aten"))
                ]
                return names[-1].removeprefix(prefix) if names else ""
        return ""

    modules: dict[str, str] = {}
    for node in proto.graph.node:
        if node.op_type not in QUANTIZED_OPS or len(node.input) < 2 or node.input[1] not in constants:
            continue
        module = scope(node)
        if not module and node.op_type == "Attention":
            after = next((scope(n) for n in readers.get(node.output[0], []) if scope(n)), "")
            module = re.sub(r"\.output(\.dense)?$", ".self", after) if after else ""
        modules[node.name] = module
    return modules


def _excluded(modules: dict[str, str], keep_float: tuple[str, ...]) -> list[str]:
    """The node names that ``keep_float`` leaves in float32; ``ValueError`` for an entry that matches none."""
    layers = {(m.group(1), int(m.group(2))) for m in map(_LAYER.match, modules.values()) if m}
    shortcut = {}
    if layers:
        stem = min(layers)[0]
        numbers = sorted(n for s, n in layers if s == stem)
        shortcut = {"first_layer": f"{stem}{numbers[0]}", "last_layer": f"{stem}{numbers[-1]}"}
    excluded: list[str] = []
    for entry in keep_float:
        if entry == "head":
            found = [n for n, m in modules.items() if m and not _LAYER.match(m)]  # the classifier
        else:
            name = shortcut.get(entry, entry)
            found = [n for n, m in modules.items() if m == name or m.startswith(name + ".")]
        if not found:
            examples = sorted({m for m in modules.values() if m})[:3]
            raise ValueError(
                f"--int8-keep-float: {entry!r} matches no weight product of the model; expected "
                f"{', '.join(KEEP_FLOAT_SHORTCUTS)} or a module name such as {', '.join(examples)}"
            )
        excluded += found
    return sorted(set(excluded))


def read_calibration_sentences(options: Int8Options) -> list[list[str]]:
    """At most ``calibration_sentences`` word lists of the file, a seeded sample over the whole file.

    Errors name ``path:line`` (bytes that are not text, bad JSON, a CoNLL line with other columns)
    or the file (missing, a directory, no words at all).
    """
    from nerfocal.documents import check_input, read_documents

    path = str(options.calibration_file)
    check_input(path)
    rng, seen = random.Random(0), 0
    sample: list[list[str]] = []
    for document in read_documents(path, options.calibration_format, options.encoding, None):
        if not document.words:
            continue
        seen += 1  # reservoir sampling: memory stays at the sample size
        if len(sample) < options.calibration_sentences:
            sample.append(list(document.words))
        elif (slot := rng.randrange(seen)) < options.calibration_sentences:
            sample[slot] = list(document.words)
    if not sample:
        fmt = options.calibration_format
        raise ValueError(f"{path}: no sentences to calibrate on (read as --calibration-format {fmt})")
    return sample


class _Calibration:
    """ORT's ``CalibrationDataReader``: the sentences' sub-words packed into full windows, one per batch.

    Packing leaves no padding (padded positions would count in the activation ranges) and gives
    every window the same shape, which the histogram calibrators need. A sentence may run across
    two windows, as in a long document.
    """

    def __init__(self, tokenizer: Any, sentences: list[list[str]], max_length: int) -> None:
        ids = [
            i
            for words in sentences
            for i in tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        ]
        # the special tokens around a text ([CLS] ... [SEP], <s> ... </s>), found on a one-word text
        around, inner = (tokenizer("a", add_special_tokens=f)["input_ids"] for f in (True, False))
        at = next(i for i in range(len(around)) if around[i : i + len(inner)] == inner)
        prefix, suffix = around[:at], around[at + len(inner) :]
        width = max(1, min(max_length, 128) - len(prefix) - len(suffix))
        chunks = [ids[start : start + width] for start in range(0, len(ids), width)]
        if len(chunks) > 1 and len(chunks[-1]) < width:
            chunks.pop()  # one shape for all windows
        self.batches = []
        for chunk in chunks:
            row = np.asarray([prefix + chunk + suffix], dtype=np.int64)  # [1, S]
            self.batches.append({"input_ids": row, "attention_mask": np.ones_like(row)})
        self._next: Iterator[dict[str, np.ndarray]] = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def rewind(self) -> None:
        self._next = iter(self.batches)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(
    source: Path,
    target: Path,
    options: Int8Options,
    *,
    calibration: list[list[str]] | None = None,
    tokenizer: Any = None,
    max_length: int = 512,
    module_prefix: str = "",
) -> list[str]:
    """Quantize the float32 graph ``source`` to ``target``; returns the node names kept in float32.

    ``mode="static"`` calibrates on ``calibration`` (word lists; default
    :func:`read_calibration_sentences`), tokenized with ``tokenizer`` into windows of at most
    ``max_length`` (and 128) sub-words. ``module_prefix`` is removed from the exporter's module names.
    ORT's ``quant_pre_process`` is skipped: its symbolic shape inference fails on dynamo graphs
    ("Incomplete symbolic shape inference"); its root-logger hint about it is dropped.
    """
    import onnx
    from onnxruntime import quantization as q

    options.check()
    sentences = calibration or (read_calibration_sentences(options) if options.mode == "static" else [])
    proto = onnx.load(str(source), load_external_data=False)
    excluded = _excluded(weight_modules(proto, module_prefix), options.keep_float)
    big = sum(p.stat().st_size for p in source.parent.glob(source.name + "*")) > 1_800_000_000
    common: dict[str, Any] = dict(
        op_types_to_quantize=QUANTIZED_OPS,
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        weight_type=q.QuantType.QInt8 if options.weight_type == "qint8" else q.QuantType.QUInt8,
        nodes_to_exclude=excluded,
        use_external_data_format=big,
    )
    root, handler, hint = logging.getLogger(), logging.NullHandler(), _DropPreprocessHint()
    root.addHandler(handler)  # so that ORT's logging.warning does not configure the caller's root logger
    root.addFilter(hint)
    # onnxruntime writes scratch files (augmented models, sym_shape_infer_temp.onnx) into the current
    # directory: run it from a temporary one
    cwd, scratch = os.getcwd(), tempfile.mkdtemp(prefix="nerfocal-quantize-")
    chatter = io.StringIO()  # the calibrators print their progress: keep stdout for the results
    try:
        os.chdir(scratch)
        if options.mode == "dynamic":
            q.quantize_dynamic(source.resolve(), target.resolve(), **common)
        else:
            method = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
            with contextlib.redirect_stdout(chatter):
                q.quantize_static(
                    source.resolve(),
                    target.resolve(),
                    _Calibration(tokenizer, sentences, max_length),
                    quant_format=q.QuantFormat.QDQ,
                    activation_type=q.QuantType.QUInt8,
                    calibrate_method=getattr(q.CalibrationMethod, method[options.calibration_method]),
                    extra_options={"CalibPercentile": 99.999},
                    **common,
                )
    finally:
        logger.debug("onnxruntime: %s", chatter.getvalue().strip())
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)
        root.removeFilter(hint)
        root.removeHandler(handler)
    logger.info("int8 (%s): %d weight products kept in float32", options.describe(), len(excluded))
    return excluded
