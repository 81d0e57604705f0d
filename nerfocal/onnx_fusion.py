"""Fuse a BERT graph's attention, LayerNorm and GELU into ONNX Runtime's kernels before int8.

``onnxruntime.transformers.optimizer`` (``model_type="bert"``) recognises the operator patterns of a
BERT layer and replaces them with ``Attention``, ``SkipLayerNormalization`` and ``BiasGelu``, which
quantization then turns into ``QAttention`` and ``DynamicQuantizeMatMul``. Its attention pattern
needs the additive mask built in the classic way, ``Where(Cast(1 - Expand(mask[:, None, None, :])))``;
the mask that transformers 5 builds (``masking_utils``) is not recognised, so :class:`MaskedEncoder`
builds it before the encoder (eager attention, which accepts a ready 4-D mask), and
:func:`split_mask_unsqueeze` undoes the exporter's merge of the two ``Unsqueeze`` steps. The fused
attention reads the 2-D ``attention_mask`` itself (any padding side, not only sequence lengths).

If a pattern is not found (another architecture, another exporter version) the graph stays correct
and simply keeps the unfused operators; :func:`fuse_bert` reports what it fused. See ``docs/export.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

__all__ = ["FUSABLE_MODEL_TYPES", "MaskedEncoder", "fuse_bert", "split_mask_unsqueeze"]

logger = logging.getLogger(__name__)

FUSABLE_MODEL_TYPES = ("bert",)  # the BERT layer pattern; checked on BertForTokenClassification
FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "LayerNormalization")


class MaskedEncoder(torch.nn.Module):
    """``model(input_ids, attention_mask)`` with the 0/1 mask turned into the additive float mask.

    Args:
        model: a ``BertForTokenClassification`` (switched to eager attention by the caller).

    ``forward``: long ``input_ids`` / ``attention_mask`` ``[B, S]`` -> the model's output (``logits``
    ``[B, S, C]``), equal to ``model(input_ids=..., attention_mask=...)``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        batch, length = attention_mask.shape
        keep = attention_mask[:, None, None, :].expand(batch, 1, length, length)  # [B, 1, S, S]
        masked = (1 - keep).to(torch.bool)
        bias = torch.where(masked, torch.finfo(torch.float32).min, 0.0)  # [B, 1, S, S]
        return self.model(input_ids=input_ids, attention_mask=bias)


def split_mask_unsqueeze(proto: Any) -> int:
    """Replace ``Unsqueeze(attention_mask, axes=[1, 2])`` by two one-axis ``Unsqueeze`` nodes, in place.

    The exporter merges ``mask[:, None, None, :]`` into one node; ORT's mask pattern wants two.
    Returns the number of nodes split (0 or 1).
    """
    import numpy as np
    from onnx import helper, numpy_helper

    constants = {init.name: init for init in proto.graph.initializer}
    for position, node in enumerate(proto.graph.node):
        if node.op_type != "Unsqueeze" or node.input[0] != "attention_mask" or len(node.input) < 2:
            continue
        axes = constants.get(node.input[1])
        if axes is None or numpy_helper.to_array(axes).tolist() != [1, 2]:
            continue
        for axis in (1, 2):
            proto.graph.initializer.append(
                numpy_helper.from_array(np.array([axis], dtype=np.int64), f"nerfocal_mask_axis_{axis}")
            )
        first = helper.make_node(
            "Unsqueeze", ["attention_mask", "nerfocal_mask_axis_1"], ["nerfocal_mask_1"], "nerfocal_mask_1"
        )
        second = helper.make_node(
            "Unsqueeze", ["nerfocal_mask_1", "nerfocal_mask_axis_2"], list(node.output), "nerfocal_mask_2"
        )
        proto.graph.node.remove(node)
        proto.graph.node.insert(position, second)
        proto.graph.node.insert(position, first)
        return 1
    return 0


class _Quiet:
    """Silence the optimizer's INFO chatter (its loggers are top-level names such as ``fusion_base``)."""

    def __enter__(self) -> None:
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.setLevel(max(self.level, logging.WARNING))

    def __exit__(self, *exc: object) -> None:
        self.root.setLevel(self.level)


def fuse_bert(source: Path, target: Path, config: Any) -> dict[str, int]:
    """Write ``source`` with BERT's operators fused to ``target``; returns ``{fused op: count}``.

    Args:
        source: an ONNX file exported from :class:`MaskedEncoder` (float32).
        target: where the fused graph goes.
        config: the transformers config (``num_attention_heads``, ``hidden_size``).
    """
    import onnx
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import AttentionMaskFormat, FusionOptions

    proto = onnx.load(str(source))
    split_mask_unsqueeze(proto)
    options = FusionOptions("bert")
    # feed the 0/1 mask to Attention as is: correct for left padding too (the default reads lengths)
    options.attention_mask_format = AttentionMaskFormat.AttentionMask
    with _Quiet():
        model = optimizer.optimize_model(
            proto,
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            optimization_options=options,
            opt_level=0,  # the graph fusions only; ORT's session optimizations run at load time
        )
        statistics = model.get_fused_operator_statistics()
        big = sum(p.stat().st_size for p in source.parent.glob(source.name + "*")) > 1_800_000_000
        model.save_model_to_file(str(target), use_external_data_format=big)
    fused = {op: int(statistics.get(op, 0)) for op in FUSED_OPS if statistics.get(op)}
    logger.info("fused %s", fused)
    return fused
