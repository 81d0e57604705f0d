"""Run an exported ONNX token classifier (``nerfocal export``) with ONNX Runtime, behind the small
model interface that :class:`nerfocal.predict.Predictor` uses, so that only the forward pass changes.

``onnxruntime`` is imported lazily: importing this module (and :mod:`nerfocal.predict`) never needs
it. See ``docs/export.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig

__all__ = [
    "BACKENDS",
    "ONNX_FILE",
    "OnnxTokenClassifier",
    "choose_backend",
    "import_onnxruntime",
    "load_onnx",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
ONNX_FILE = "model.onnx"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module; ``ImportError`` naming the extra when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "the ONNX backend needs onnxruntime; install it with: pip install nerfocal[onnx]"
        ) from None
    return onnxruntime


def choose_backend(path: str | Path, backend: str = "auto") -> str:
    """``"torch"`` or ``"onnx"`` for a model directory.

    ``auto``: ``onnx`` when the directory holds ``model.onnx`` and no ``model.safetensors``, else
    ``torch`` (whose loader reports a directory that holds neither).
    """
    if backend not in BACKENDS:
        raise ValueError(f"expected backend in {BACKENDS}, got {backend!r}")
    directory = Path(path)
    if backend == "auto":
        has_onnx = (directory / ONNX_FILE).is_file()
        return "onnx" if has_onnx and not (directory / "model.safetensors").is_file() else "torch"
    if backend == "onnx" and directory.is_dir() and not (directory / ONNX_FILE).is_file():
        raise FileNotFoundError(
            f"{directory}: no {ONNX_FILE}; expected a directory written by `nerfocal export`"
        )
    return backend


class _Embeddings(SimpleNamespace):
    """Stands in for the input embedding module: only its vocabulary size is read."""

    num_embeddings: int


class OnnxTokenClassifier:
    """An ONNX Runtime session called like a ``*ForTokenClassification`` model.

    ``model(input_ids=..., attention_mask=...)`` returns an object whose ``logits`` is a float32
    CPU tensor ``[B, S, C]``. Inputs ``token_type_ids`` (if the graph has them) are fed as zeros, the
    default of the PyTorch models.

    Args:
        path: the ``.onnx`` file.
        config: the ``transformers`` config read from the same directory.
        threads: intra-op threads; default ``torch.get_num_threads()`` (which follows
            ``OMP_NUM_THREADS`` and ``torch.set_num_threads``).
        providers: ONNX Runtime execution providers; default the CPU.
    """

    def __init__(
        self,
        path: str | Path,
        config: Any,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
        self.providers = providers or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as err:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{self.path}: cannot load the ONNX model ({first})") from None
        self.inputs = {i.name: _INT_TYPES.get(i.type) for i in self.session.get_inputs()}
        unknown = [name for name in self.inputs if name not in _INPUTS]
        if unknown or "input_ids" not in self.inputs or None in self.inputs.values():
            raise ValueError(
                f"{self.path}: expected integer inputs among {_INPUTS} including input_ids, "
                f"got {[(i.name, i.type) for i in self.session.get_inputs()]}"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "logits" if "logits" in outputs else outputs[0]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        """Long ``input_ids`` / ``attention_mask`` ``[B, S]`` -> an object with float ``logits [B, S, C]``."""
        ids = input_ids.detach().cpu().numpy()
        mask = np.ones_like(ids) if attention_mask is None else attention_mask.detach().cpu().numpy()
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feed = {name: arrays[name].astype(dtype, copy=False) for name, dtype in self.inputs.items()}
        (logits,) = self.session.run([self.output], feed)
        return SimpleNamespace(logits=torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)))

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        """Accept what :class:`Predictor` asks for: the CPU in float32 (int8 is chosen at export)."""
        if dtype is not None and dtype != torch.float32:
            raise ValueError(
                f"expected dtype float32 for an ONNX model (use `nerfocal export --quantize int8` "
                f"for a faster model), got {str(dtype).removeprefix('torch.')}"
            )
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"expected device 'cpu' for the ONNX backend, got {str(device)!r}")
        return self

    def eval(self) -> OnnxTokenClassifier:
        return self

    def get_input_embeddings(self) -> _Embeddings | None:
        """The vocabulary size (``config.vocab_size``), so Predictor can check the tokenizer."""
        size = getattr(self.config, "vocab_size", None)
        return _Embeddings(num_embeddings=size) if isinstance(size, int) and size > 0 else None


def load_onnx(path: str | Path, *, threads: int | None = None) -> tuple[OnnxTokenClassifier, Any]:
    """Load ``(model, tokenizer)`` from a directory written by :func:`nerfocal.export.export_model`.

    Raises:
        ImportError: onnxruntime is not installed (the message names ``nerfocal[onnx]``).
        FileNotFoundError: no such directory, or no ``model.onnx`` / ``config.json`` in it.
        ValueError: an unreadable config, tokenizer or ONNX file; the message names the directory.
    """
    import_onnxruntime()
    from nerfocal.loading import _PREFIX_SPACE_MODELS, _one_line, labels_from_config

    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model directory")
    for name in (ONNX_FILE, "config.json"):
        if not (directory / name).is_file():
            raise FileNotFoundError(
                f"{directory}: no {name}; expected a directory written by `nerfocal export`"
            )
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    except Exception as err:
        raise ValueError(f"{directory}: cannot read config.json ({_one_line(err)})") from None
    labels_from_config(config, directory)
    from transformers import AutoTokenizer

    # the same tokenizer options as the PyTorch loader, so both backends see the same sub-words
    extra = {"add_prefix_space": True} if getattr(config, "model_type", "") in _PREFIX_SPACE_MODELS else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=True, local_files_only=True, **extra)
    except Exception as err:
        raise ValueError(f"{directory}: cannot load the tokenizer ({_one_line(err)})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{directory}: expected a fast (Rust) tokenizer with word ids, got {type(tokenizer).__name__}"
        )
    model = OnnxTokenClassifier(directory / ONNX_FILE, config, threads=threads)
    logger.info("loaded %s (%s) with ONNX Runtime", directory / ONNX_FILE, model.providers[0])
    return model, tokenizer
