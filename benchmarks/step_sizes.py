"""Labelled tokens per optimizer step under each batching: why ``loss_normalization`` matters.

    python benchmarks/benchmark.py step-sizes

The CoNLL-2003 and WNUT-17 training sets encoded as training encodes them (MiniLM tokenizer,
max_length 256, first-sub-word labels), cut into steps of 32 sentences the way the trainer's
samplers cut them (seed 1, epoch 0). Under ``loss_normalization step`` every step weighs the same,
so a token of a step with n labelled tokens weighs 1/n; the last column compares the lightest
step's token with the token of a median random step.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import torch
from common import DATASETS, MINILM, command_line, machine, write_section

BATCH = 32
SEED = 1


def step_tokens(dataset: str) -> dict[str, list[int]]:
    """Labelled tokens of every step of one epoch, per batching."""
    from transformers import AutoTokenizer

    from nerfocal.conll import read_conll
    from nerfocal.encode import encode_sentences
    from nerfocal.loading import resolve_model_path
    from nerfocal.losses import IGNORE_INDEX
    from nerfocal.trainer import EpochLengthGroupedSampler

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MINILM))
    sentences = list(read_conll(DATASETS[dataset]["dir"] / "train.txt"))
    features, _, _ = encode_sentences(sentences, tokenizer, defaultdict(int), max_length=256)
    labelled = [sum(y != IGNORE_INDEX for y in f["labels"]) for f in features]
    lengths = [len(f["input_ids"]) for f in features]  # what group_by_length sorts by

    generator = torch.Generator()
    generator.manual_seed(SEED)
    orders = {"random": torch.randperm(len(features), generator=generator).tolist()}
    for name, steps in (("length-grouped (default)", None), ("length groups of 8 steps", 8)):
        orders[name] = list(EpochLengthGroupedSampler(BATCH, lengths, SEED, lambda: 0, group_steps=steps))
    return {
        name: [sum(labelled[i] for i in order[k : k + BATCH]) for k in range(0, len(order), BATCH)]
        for name, order in orders.items()
    }


def main(args: Any) -> None:
    lines = [
        "## Labelled tokens per optimizer step",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Training sets encoded with the MiniLM tokenizer (max_length 256, first-sub-word labels), steps of "
        f"{BATCH} sentences, seed {SEED}, epoch 0; the last step of an epoch (the remainder) is left out.",
        "",
        "| dataset | batching | steps | min | median | max | lightest step's token vs a median random step's |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in args.datasets:
        tokens = step_tokens(dataset)
        full = {name: counts[:-1] for name, counts in tokens.items()}  # the remainder step is short anyway
        median_random = statistics.median(full["random"])
        for name, counts in full.items():
            lines.append(
                f"| {dataset} | {name} | {len(counts)} | {min(counts)} | {statistics.median(counts):.0f} | "
                f"{max(counts)} | {median_random / min(counts):.1f}x |"
            )
    write_section("step-sizes", "\n".join(lines))
