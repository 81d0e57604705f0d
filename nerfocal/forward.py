"""Forward passes over tokenized windows: padded batches, or windows packed several to a row.

Padding: windows sorted by length, a batch closes before a window under half the batch's width, so
padding stays under half of each batch. That suits ``nerfocal predict``, which sorts thousands of
windows at once. A server's micro-batch holds a few dozen windows of any length: padded, it splits
into small forward passes or pads short windows to long ones.

Packing puts several windows in one row of ``pack_width`` positions: each window attends only to
itself (a block-diagonal 4-D attention mask) and its position ids restart at 0, so its logits are the
ones it gets alone, up to float rounding. transformers packs for training (``DataCollatorWithFlattening``,
with flash-attention kernels on a GPU) but has nothing for encoder inference with SDPA on a CPU, hence
this module. Not every encoder takes a 4-D mask and position ids this way (RoBERTa's positions start
after its padding id, DeBERTa builds its own masks): :func:`supports_packing` checks a model once, on
two probe windows, and the predictor pads instead when the check fails.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import torch

logger = logging.getLogger(__name__)

PACK_WIDTH = 128  # positions per packed row (longer windows get a row of their own length)


def forward_groups(
    lengths: list[int], *, batch_tokens: int, max_batch_size: int, pack: bool
) -> Iterator[list[int]]:
    """Window indices per forward pass, the windows taken longest first (stable among equals).

    Padded: at most ``batch_tokens // width`` windows (and ``max_batch_size``), closing before a window
    under half the first one's length. Packed: windows until their lengths sum to ``batch_tokens``.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    start = 0
    while start < len(order):
        width = lengths[order[start]]
        end, tokens = start + 1, width
        if pack:
            limit = min(len(order), start + max_batch_size)
            while end < limit and tokens + lengths[order[end]] <= batch_tokens:
                tokens += lengths[order[end]]
                end += 1
        else:
            size = max(1, min(max_batch_size, batch_tokens // width))
            while end < min(start + size, len(order)) and 2 * lengths[order[end]] >= width:
                end += 1
        yield order[start:end]
        start = end


def padded_logits(model: Any, rows: list[list[int]], width: int, pad_id: int, device: Any) -> torch.Tensor:
    """Logits ``[b, width, C]`` of ``rows`` (token ids) padded to ``width``, on ``device``."""
    lengths = torch.tensor([len(r) for r in rows])
    mask = torch.arange(width) < lengths[:, None]  # [b, width]
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    input_ids[mask] = torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.long)
    return model(input_ids=input_ids.to(device), attention_mask=mask.long().to(device)).logits  # type: ignore[no-any-return]


def plan_rows(lengths: list[int], width: int) -> list[list[int]]:
    """First-fit decreasing: the windows (indices into ``lengths``) of each row of ``width`` positions."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True):
        size = lengths[index]
        for row, free in enumerate(room):
            if free >= size:
                rows[row].append(index)
                room[row] -= size
                break
        else:
            rows.append([index])
            room.append(width - size)
    return rows


def packed_logits(
    model: Any, rows: list[list[int]], width: int, pad_id: int, device: Any, pack_width: int = PACK_WIDTH
) -> torch.Tensor:
    """The same ``[b, width, C]`` as :func:`padded_logits`, computed with the windows packed in rows."""
    lengths = [len(r) for r in rows]
    row_width = max(pack_width, max(lengths))
    plan = plan_rows(lengths, row_width)
    input_ids = torch.full((len(plan), row_width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(plan), row_width), dtype=torch.long)
    segments = torch.full((len(plan), row_width), -1, dtype=torch.long)  # -1: padding
    placed: list[tuple[int, int, int]] = []  # (window, row, offset)
    for row, windows in enumerate(plan):
        offset = 0
        for window in windows:
            n = lengths[window]
            input_ids[row, offset : offset + n] = torch.tensor(rows[window], dtype=torch.long)
            positions[row, offset : offset + n] = torch.arange(n)
            segments[row, offset : offset + n] = window
            placed.append((window, row, offset))
            offset += n
    same = (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] >= 0)  # [R, W, W]
    same |= torch.eye(row_width, dtype=torch.bool)  # padding attends to itself: no empty softmax row
    weight = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    dtype = weight.dtype if weight is not None and weight.is_floating_point() else torch.float32
    mask = torch.zeros(same.shape, dtype=dtype).masked_fill_(~same, torch.finfo(dtype).min)[:, None]
    logits = model(
        input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device)
    ).logits  # [R, row_width, C]
    out = logits.new_zeros((len(rows), width, logits.shape[-1]))
    for window, row, offset in placed:
        out[window, : lengths[window]] = logits[row, offset : offset + lengths[window]]
    return out


def supports_packing(model: Any, pad_id: int, device: Any, vocab_size: int) -> bool:
    """Whether ``model`` gives packed windows the logits they get padded (two probe windows)."""
    high = max(3, min(vocab_size, 1000))
    probe = [[(7 * i + 3) % high for i in range(9)], [(5 * i + 11) % high for i in range(5)]]
    try:
        with torch.inference_mode():
            padded = padded_logits(model, probe, 9, pad_id, device).float()
            packed = packed_logits(model, probe, 9, pad_id, device, pack_width=16).float()
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        logger.info("sequence packing unavailable for this model (%s): padding instead", err)
        return False
    keep = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    gap = float((padded - packed).abs()[keep].max())
    scale = float(padded.abs()[keep].max()) or 1.0
    if gap > 1e-3 * scale:
        logger.info("sequence packing changes this model's logits (by %.2g): padding instead", gap)
        return False
    return True
