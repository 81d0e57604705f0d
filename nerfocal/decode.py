"""Word-level decoding of tag log-probabilities: argmax, and Viterbi constrained to valid IOB2 / BIOES.

Torch and :mod:`nerfocal.labels` only: the inference code imports this module.

The constrained decoder finds, for each sentence, the tag sequence with the highest total
log-probability ``sum_t log p(tag_t | word_t)`` among the sequences that are valid in the scheme.
There are no learned transition scores: a transition is either allowed (0) or forbidden (-inf).

IOB2 forbids ``I-X`` at the start, after ``O`` and after ``B-Y``/``I-Y`` with ``Y != X``.
BIOES also forbids ``E-X`` in those places, forces ``B-X``/``I-X`` to be followed by ``I-X`` or
``E-X``, and forbids ending a sentence on ``B-X`` or ``I-X``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from nerfocal.labels import OUTSIDE, check_scheme, split_tag

logger = logging.getLogger(__name__)

DECODERS = ("viterbi", "argmax")


def transition_constraints(
    labels: Sequence[str], scheme: str = "IOB2"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which tags may start a sentence, follow each tag, and end a sentence.

    Args:
        labels: the model's labels in id order (``id2label``).
        scheme: ``IOB2`` or ``BIOES`` (``IOB1`` is decoded as IOB2: valid IOB2 is the target).

    Returns:
        ``(start, transitions, end)``: bool tensors ``[C]``, ``[C, C]`` (``[from, to]``) and ``[C]``.
    """
    scheme = check_scheme(scheme)
    parts = [split_tag(label) for label in labels]
    n = len(labels)
    start = torch.zeros(n, dtype=torch.bool)
    end = torch.zeros(n, dtype=torch.bool)
    trans = torch.zeros(n, n, dtype=torch.bool)
    bioes = scheme == "BIOES"
    # tags that continue a chunk, and tags a chunk must be continued by (open chunk)
    continues = ("I", "E") if bioes else ("I",)
    opens = ("B", "I") if bioes else ()
    for j, (pj, tj) in enumerate(parts):
        start[j] = pj not in continues
        end[j] = pj not in opens
        for i, (pi, ti) in enumerate(parts):
            inside = pi in ("B", "I")  # a chunk of type ti is open after tag i
            if pj in continues:
                trans[i, j] = inside and ti == tj
            else:
                trans[i, j] = not (bioes and inside)
    return start, trans, end


def viterbi_decode(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Best valid tag sequence per sentence, vectorised over the batch (loops over positions only).

    Args:
        log_probs: float tensor ``[B, T, C]``, per-word tag log-probabilities; positions at or after
            a sentence's length are ignored.
        lengths: long tensor ``[B]``, number of words per sentence (>= 1).
        constraints: ``(start [C], transitions [C, C], end [C])`` bool masks from
            :func:`transition_constraints`.

    Returns:
        long tensor ``[B, T]`` of tag ids (positions past a sentence's length hold its last tag).
    """
    batch, steps, n_tags = log_probs.shape
    device = log_probs.device
    start, trans, end = (c.to(device) for c in constraints)
    neg_inf = torch.tensor(float("-inf"), device=device, dtype=log_probs.dtype)
    trans_score = torch.where(trans, 0.0, neg_inf)  # [C, C]
    score = log_probs[:, 0] + torch.where(start, 0.0, neg_inf)  # [B, C]
    identity = torch.arange(n_tags, device=device).expand(batch, n_tags)
    backpointers = torch.empty(batch, steps, n_tags, dtype=torch.long, device=device)
    backpointers[:, 0] = identity
    for t in range(1, steps):
        # best previous tag for every current tag: [B, C_from, C_to] -> [B, C_to]
        best, arg = (score.unsqueeze(2) + trans_score).max(dim=1)
        active = (t < lengths).unsqueeze(1)  # [B, 1]
        score = torch.where(active, best + log_probs[:, t], score)
        backpointers[:, t] = torch.where(active, arg, identity)
    score = score + torch.where(end, 0.0, neg_inf)
    tags = torch.empty(batch, steps, dtype=torch.long, device=device)
    current = score.argmax(dim=1)  # [B]
    for t in range(steps - 1, -1, -1):
        tags[:, t] = current
        current = backpointers[:, t].gather(1, current.unsqueeze(1)).squeeze(1)
    return tags


def decode(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    method: str,
    constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Dispatch to ``argmax`` or constrained ``viterbi``; shapes as in :func:`viterbi_decode`."""
    if method == "argmax":
        return log_probs.argmax(dim=-1)
    if method == "viterbi":
        if constraints is None:
            raise ValueError("expected transition constraints for viterbi decoding, got None")
        return viterbi_decode(log_probs, lengths, constraints)
    raise ValueError(f"expected a decode method in {DECODERS}, got {method!r}")


def outside_id(labels: Sequence[str]) -> int:
    """Index of ``O`` in the label list."""
    try:
        return list(labels).index(OUTSIDE)
    except ValueError:
        raise ValueError(f"expected an 'O' label in the label list, got {list(labels)}") from None


# Viterbi loops over positions: documents longer than this many words are decoded as a batch of
# overlapping segments (see viterbi_segments), so no sequential pass spans a huge document
VITERBI_SEGMENT = 1024
VITERBI_OVERLAP = 128


def viterbi_segments(
    log_probs: torch.Tensor,
    constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    size: int = VITERBI_SEGMENT,
    overlap: int = VITERBI_OVERLAP,
    per_group: int = 64,
) -> torch.Tensor:
    """Viterbi over one long document as a batch of overlapping segments, stitched where they agree.

    Segments of ``size`` words overlap by at least ``overlap``; ``per_group`` of them are decoded
    together (time and memory no longer grow with one sequential pass over the whole document).
    Consecutive paths are joined at the position of their overlap nearest its middle where both
    chose the same tag: each part keeps its own valid transitions, so the result is a valid
    sequence. Paths that never agree (not seen in practice) are joined at the middle, with a warning.

    Args:
        log_probs: float tensor ``[T, C]``, ``T > size``.
        constraints: the output of :func:`transition_constraints`.

    Returns:
        long tensor ``[T]`` of tag ids.
    """
    total = log_probs.shape[0]
    step = size - overlap
    starts = [*range(0, total - size, step), total - size]
    index = torch.tensor(starts)[:, None] + torch.arange(size)  # [K, size]
    paths = torch.cat(
        [
            decode(
                log_probs[index[g : g + per_group]],  # [k, size, C]
                torch.full((len(index[g : g + per_group]),), size),
                "viterbi",
                constraints,
            )
            for g in range(0, len(starts), per_group)
        ]
    )  # [K, size]
    out = torch.empty(total, dtype=torch.long)
    out[:size] = paths[0]
    for k in range(1, len(starts)):
        begin, end = starts[k], starts[k - 1] + size  # the overlap [begin, end)
        agree = (out[begin:end] == paths[k, : end - begin]).nonzero().squeeze(1)
        middle = (end - begin) // 2
        if len(agree):
            cut = int(agree[(agree - middle).abs().argmin()])
        else:
            cut = middle
            logger.warning("viterbi segments disagree over a whole overlap at word %d", begin + cut)
        out[begin + cut : starts[k] + size] = paths[k, cut:]
    return out


def label_scheme(labels: Sequence[str]) -> str:
    """``BIOES`` when ``labels`` hold an ``E-``/``S-`` tag, else ``IOB2`` (the decoding target)."""
    return "BIOES" if {split_tag(label)[0] for label in labels} & {"E", "S"} else "IOB2"


def viterbi_tags(
    word_log_probs: Sequence[torch.Tensor], labels: Sequence[str], scheme: str | None = None, group: int = 256
) -> list[list[str]]:
    """Constrained Viterbi tags of many sentences, decoded in length-sorted batches.

    Args:
        word_log_probs: per sentence, float ``[n_words, C]`` (the decision scores: log-probabilities,
            less any ``O`` bias); an empty sentence gets no tag.
        labels: the tag of each class id.
        scheme: ``IOB2`` or ``BIOES``; None: read from ``labels`` (:func:`label_scheme`).
        group: sentences per batch.

    Documents over :data:`VITERBI_SEGMENT` words are decoded by :func:`viterbi_segments`, as
    ``nerfocal predict`` does.
    """
    constraints = transition_constraints(labels, scheme or label_scheme(labels))
    out: list[list[str]] = [[] for _ in word_log_probs]
    lengths = [int(x.shape[0]) for x in word_log_probs]
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
    for i in [i for i in order if lengths[i] > VITERBI_SEGMENT]:
        out[i] = [labels[t] for t in viterbi_segments(word_log_probs[i], constraints).tolist()]
    order = [i for i in order if lengths[i] <= VITERBI_SEGMENT]
    for start in range(0, len(order), group):
        batch = order[start : start + group]
        width = lengths[batch[0]]
        padded = torch.zeros(len(batch), width, len(labels))
        for k, i in enumerate(batch):
            padded[k, : lengths[i]] = word_log_probs[i]
        tags = viterbi_decode(padded, torch.tensor([lengths[i] for i in batch]), constraints)
        for k, i in enumerate(batch):
            out[i] = [labels[t] for t in tags[k, : lengths[i]].tolist()]
    return out
