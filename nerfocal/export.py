"""Export a saved nerfocal model to ONNX (optionally quantized to int8), and verify it.

The graph is traced with ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter,
the default since torch 2.9; the TorchScript one is deprecated), with dynamic ``batch`` and
``sequence`` axes and the inputs the predictor feeds: ``input_ids`` and ``attention_mask``. A BERT
graph then gets ONNX Runtime's fused attention/LayerNorm/GELU kernels (:mod:`nerfocal.onnx_fusion`).
int8 is :func:`nerfocal.quantize.quantize_int8`: by default dynamic, per-channel int8 weights of the
weight products, the first encoder layer kept float32; LayerNorm, GELU, Softmax and the embeddings
stay float32. See ``docs/export.md``.

The output directory is written to a temporary sibling and renamed into place only after the
self-check passed, so a failed export never leaves a half-written directory.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfocal.loading import load_pretrained
from nerfocal.onnx_backend import ONNX_FILE, OnnxTokenClassifier, import_onnxruntime
from nerfocal.onnx_fusion import FUSABLE_MODEL_TYPES, MaskedEncoder, fuse_bert
from nerfocal.quantize import Int8Options, quantize_int8, read_calibration_sentences

__all__ = ["CHECK_TEXTS", "ExportReport", "export_model"]

logger = logging.getLogger(__name__)

FORMATS = ("onnx",)
QUANTIZE = (None, "int8")
_EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GB limit, with room for the graph

# sentences for the self-check; tokenized as words, like the predictor does
CHECK_TEXTS = (
    "Angela Merkel visited Paris in June with the European Union delegation .",
    "The United Nations said on Tuesday that New York-based firms pay less .",
    "Müller , Zoë and José met at the café in São Paulo .",
    "Reuters",
    "Shares of Apple Inc. rose 3 % in Frankfurt after the Bundesbank report on 12 March 2024 .",
    "Barcelona beat Real Madrid 3-1 on Sunday , with Lionel Messi scoring twice at the Camp Nou .",
    "Toyota Motor Corp said its profit rose , while Sony and Honda reported weaker sales in Japan .",
    "The World Health Organization warned that cholera had spread from Yemen to Somalia and Kenya .",
    "Prime Minister Tony Blair met Bill Clinton at the White House to discuss Northern Ireland .",
    "Oil prices fell in London and New York after OPEC ministers agreed to raise output in Vienna .",
    "Judge Maria Santos of the Supreme Court in Manila ruled against the Philippine National Bank .",
    "Deutsche Telekom , Siemens and BMW led the DAX higher as the euro weakened against the dollar .",
)


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how closely it matches the PyTorch model.

    Attributes:
        output_dir: the exported directory.
        model_file: the ONNX file inside it (always ``model.onnx``; int8 is recorded in config.json).
        quantize: ``None`` (float32) or ``"int8"``.
        opset: the ONNX opset of the graph.
        size_bytes: size of the ONNX file (plus external weights, if any).
        check_tokens: non-padding positions compared in the self-check (0 with ``check=False``).
        max_abs_diff: largest logit difference from PyTorch on those positions.
        argmax_agreement: fraction of the text positions (the check sentences and the long text
            window; not the random-id windows, whose labels are near ties) with the same arg-max label.
        seconds: wall time of the export, quantization and check.
        fused: ONNX Runtime kernels the graph was fused into (``{"Attention": 6, ...}``; empty when
            not optimized).
        int8: the int8 recipe (:meth:`Int8Options.describe`), ``""`` for float32.
        kept_float: weight products left in float32 by ``Int8Options.keep_float``.
    """

    output_dir: Path
    model_file: str
    quantize: str | None
    opset: int
    size_bytes: int
    check_tokens: int
    max_abs_diff: float
    argmax_agreement: float
    seconds: float
    fused: dict[str, int] = field(default_factory=dict)
    int8: str = ""
    kept_float: int = 0

    def summary(self) -> str:
        """One line for the command line: where, precision, size and the check's result."""
        check = (
            f"check: max |logit diff| {self.max_abs_diff:.2g}, {self.argmax_agreement:.2%} same labels "
            f"on {self.check_tokens} tokens"
            if self.check_tokens
            else "not checked"
        )
        precision = self.quantize or "float32"
        details = [f"opset {self.opset}", f"{self.size_bytes / 1e6:.1f} MB"]
        if self.int8:
            details.append(self.int8)
        if self.fused:
            details.append("fused " + ", ".join(f"{n} {op}" for op, n in self.fused.items()))
        return f"{self.output_dir / self.model_file} ({precision}, {', '.join(details)}); {check}"


def _refuse_remote_code(directory: Path) -> None:
    for name in ("config.json", "tokenizer_config.json"):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: expected JSON, got {type(err).__name__}: {err}") from None
        if isinstance(data, dict) and "auto_map" in data:
            raise ValueError(
                f"{path}: expected a built-in transformers architecture, got custom code (auto_map: "
                f"{sorted(data['auto_map'])}); ONNX export does not run remote code"
            )
    code = sorted(p.name for p in directory.glob("*.py"))
    if code:
        raise ValueError(
            f"{directory}: expected a model without custom code, got {code}; ONNX export does not run it"
        )


def _check_batches(tokenizer: Any, max_length: int, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Padded int64 batches of varying size and length: the texts (batches of 1, 3 and the rest),
    one full window next to a short row, and two full windows of random ids."""
    words = [text.split() for text in texts if text.split()]
    long_doc = list(itertools.islice(itertools.cycle([w for text in words for w in text]), max_length * 2))
    groups = [words[:1], words[1:4], words[4:], [long_doc, words[0]]]
    batches = []
    for group in (g for g in groups if g):
        encoded = tokenizer(
            group, is_split_into_words=True, truncation=True, max_length=max_length, padding=True
        )
        batches.append({k: np.asarray(encoded[k], dtype=np.int64) for k in ("input_ids", "attention_mask")})
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(tokenizer), size=(2, max_length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, max_length // 2 :] = 0
    batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def _compare(model: Any, session: OnnxTokenClassifier, batches: list[dict[str, np.ndarray]]) -> tuple:
    """``(positions, max_abs_diff, argmax_agreement)`` over the non-padding positions."""
    diffs, agree, count = [0.0], 0, 0
    for batch in batches:
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        with torch.inference_mode():
            expected = model(**tensors).logits.float()  # [B, S, C]
        got = session(**tensors).logits  # [B, S, C]
        keep = tensors["attention_mask"].bool()  # [B, S]
        expected, got = expected[keep], got[keep]  # [N, C]
        diffs.append(float((expected - got).abs().max()))
        agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
        count += int(keep.sum())
    return count, max(diffs), agree / max(count, 1)


def _export_onnx(model: Any, path: Path, sample: dict[str, torch.Tensor], opset: int | None) -> None:
    """Trace ``model`` to ``path`` with dynamic batch and sequence axes (the dynamo exporter)."""
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: sequence} for name in sample}
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision not installed"
    level = registry.level
    registry.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # the exporter names the axes itself and notes every alias; torch.export warns about pytree API
        warnings.filterwarnings("ignore", message=r".*axis name", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(
            model,
            (),
            kwargs=sample,
            input_names=list(sample),
            output_names=["logits"],
            dynamic_shapes=shapes,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    registry.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > _EXTERNAL_DATA_BYTES
    program.save(str(path), external_data=big)


def _opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def export_model(
    model_dir: str | Path,
    output_dir: str | Path,
    *,
    format: str = "onnx",
    quantize: str | None = None,
    int8: Int8Options | None = None,
    optimize: bool = True,
    opset: int | None = None,
    check: bool = True,
    atol: float = 1e-3,
    min_agreement: float = 0.98,
    check_texts: Sequence[str] = CHECK_TEXTS,
) -> ExportReport:
    """Export ``model_dir`` (written by training) to ``output_dir`` for :class:`Predictor` ``backend="onnx"``.

    Writes ``model.onnx``, the tokenizer files and the model's ``config.json`` (labels, tag scheme,
    temperature, max length kept) with ``nerfocal_backend: "onnx"`` and ``nerfocal_onnx_precision``.

    Args:
        model_dir: a directory written by ``save_pretrained`` (safetensors weights, no custom code).
        output_dir: a new directory (an existing one must be empty).
        format: only ``"onnx"``.
        quantize: ``None`` (float32) or ``"int8"``.
        int8: how to quantize (default :class:`Int8Options`, the measured recipe); only with int8.
        optimize: fuse a BERT graph into ONNX Runtime's Attention/SkipLayerNormalization/BiasGelu
            kernels (model types :data:`FUSABLE_MODEL_TYPES`; others are exported unfused).
        opset: ONNX opset; default the exporter's.
        check: compare with PyTorch on :data:`CHECK_TEXTS` (batches of 1, 3 and more, and one full
            window of their words) plus random-id windows.
        atol: float32 fails if a logit differs by more than this on any position.
        min_agreement: int8 fails if fewer text positions than this fraction keep their arg-max label
            (random ids are left out: their labels are near ties that int8 flips on any model).
        check_texts: the sentences of the check.

    Raises:
        ImportError: onnx / onnxruntime / onnxscript missing (names ``nerfocal[onnx]``).
        ValueError: a bad option, custom code, an existing non-empty ``output_dir``, or a failed check.
        FileNotFoundError: no model directory or config.json.
    """
    started = time.perf_counter()
    if format not in FORMATS:
        raise ValueError(f"expected format in {FORMATS}, got {format!r}")
    if quantize not in QUANTIZE:
        raise ValueError(f"expected quantize in {QUANTIZE}, got {quantize!r}")
    if int8 is not None and quantize != "int8":
        raise ValueError("int8 options given without quantize='int8' (--quantize int8)")
    options = (int8 or Int8Options()) if quantize == "int8" else None
    calibration = None
    if options is not None:
        options.check()
        if options.mode == "static":  # a bad calibration file fails before the model is loaded
            calibration = read_calibration_sentences(options)
    source, output = Path(model_dir), Path(output_dir)
    import_onnxruntime()
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (the dynamo exporter's op library)
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs {err.name}; install it with: pip install nerfocal[onnx]"
        ) from None
    if source.is_dir():
        _refuse_remote_code(source)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(f"{output}: expected a new or empty output directory, got an existing non-empty one")
    if output.resolve() == source.resolve():
        raise ValueError(f"{output}: expected an output directory other than the model directory")
    model, tokenizer = load_pretrained(source)
    model = model.float().eval()
    from nerfocal.predict import Predictor  # validates labels/scheme and gives the window length

    max_length = Predictor(model, tokenizer, device="cpu").max_length
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        batches = _check_batches(tokenizer, max_length, check_texts)
        sample = {k: torch.from_numpy(v) for k, v in batches[-2].items()}  # padded, two rows
        target = work / ONNX_FILE
        fuse = optimize and getattr(model.config, "model_type", "") in FUSABLE_MODEL_TYPES
        scratch = Path(tempfile.mkdtemp(prefix="float32.", dir=work))
        traced = scratch / ONNX_FILE if fuse or options else target
        if fuse:
            model.set_attn_implementation("eager")  # accepts the ready 4-D mask of MaskedEncoder
            _export_onnx(MaskedEncoder(model).eval(), scratch / "traced.onnx", sample, opset)
            fused = fuse_bert(scratch / "traced.onnx", traced, model.config)
        else:
            fused = {}
            _export_onnx(model, traced, sample, opset)
        kept: list[str] = []
        if options is not None:
            kept = quantize_int8(
                traced,
                target,
                options,
                calibration=calibration,
                tokenizer=tokenizer,
                max_length=max_length,
                module_prefix="model." if fuse else "",
            )
        elif traced != target:
            for path in scratch.glob(ONNX_FILE + "*"):  # model.onnx and its external weights, if any
                shutil.move(path, work / path.name)
        shutil.rmtree(scratch)
        tokenizer.save_pretrained(work)
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        config.update(
            nerfocal_backend="onnx",
            nerfocal_onnx_file=ONNX_FILE,
            nerfocal_onnx_precision=quantize or "float32",
            nerfocal_exported_from=str(source),
        )
        if options is not None:
            config["nerfocal_onnx_int8"] = options.describe()
        (work / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
        count, diff, agreement = 0, float("nan"), float("nan")
        if check:
            session = OnnxTokenClassifier(target, model.config)
            count, diff, agreement = _compare(model, session, batches)
            if options is not None:  # int8: labels on the text positions (the last batch is random ids)
                count, _, agreement = _compare(model, session, batches[:-1])
            if quantize is None and not diff <= atol:
                raise ValueError(
                    f"{source}: ONNX export check failed: max abs logit difference {diff:.3g} from "
                    f"PyTorch on {count} positions, expected <= {atol:g}"
                )
            if options is not None and not agreement >= min_agreement:
                raise ValueError(
                    f"{source}: int8 export check failed: {agreement:.1%} of {count} positions keep "
                    f"PyTorch's label, expected >= {min_agreement:.1%} (int8: {options.describe()}); "
                    f"try {options.suggestions()}"
                )
        if output.exists():
            output.rmdir()  # empty, checked above
        os.replace(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in output.glob(ONNX_FILE + "*"))
    report = ExportReport(
        output_dir=output,
        model_file=ONNX_FILE,
        quantize=quantize,
        opset=_opset(output / ONNX_FILE),
        size_bytes=size,
        check_tokens=count,
        max_abs_diff=diff,
        argmax_agreement=agreement,
        seconds=time.perf_counter() - started,
        fused=fused,
        int8=options.describe() if options else "",
        kept_float=len(kept),
    )
    logger.info("exported %s -> %s: %s", source, output, report)
    return report
