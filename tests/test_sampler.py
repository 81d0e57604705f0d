"""Length-grouped batches: the same batches as transformers' grouping, visited in shuffled order."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch
from fixtures import LABELS, tiny_model
from transformers import TrainingArguments
from transformers.trainer_pt_utils import get_length_grouped_indices

from nerfocal.config import DataConfig, LossConfig, parse_config
from nerfocal.trainer import EpochLengthGroupedSampler, FocalLossTrainer

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(1, 60) for _ in range(203)]  # 203 = 12 batches of 16 + 11


def batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def draw(order: str, seed: int = 3, epoch: int = 0, steps: int | None = None) -> list[int]:
    return list(EpochLengthGroupedSampler(16, LENGTHS, seed, lambda: epoch, order=order, group_steps=steps))


def test_sorted_order_is_transformers_grouping_seeded_by_seed_plus_epoch() -> None:
    generator = torch.Generator()
    generator.manual_seed(3 + 2)
    assert draw("sorted", epoch=2) == get_length_grouped_indices(LENGTHS, 16, generator=generator)


@pytest.mark.parametrize("steps", [None, 1, 4])
def test_shuffled_order_visits_the_same_batches_in_another_order(steps: int | None) -> None:
    shuffled, ordered = batches(draw("shuffled", steps=steps), 16), batches(draw("sorted", steps=steps), 16)
    assert shuffled != ordered
    assert sorted(map(sorted, shuffled)) == sorted(map(sorted, ordered))  # same batches, same padding
    assert shuffled[0] == ordered[0] and max(LENGTHS) in [LENGTHS[i] for i in shuffled[0]]
    assert shuffled[-1] == ordered[-1] and len(shuffled[-1]) == 203 % 16  # the short batch stays last
    assert all(len(b) == 16 for b in shuffled[:-1])


def test_shuffled_order_breaks_the_long_to_short_runs() -> None:
    def descending_steps(indices: list[int]) -> int:
        longest = [max(LENGTHS[i] for i in b) for b in batches(indices, 16)]
        return sum(a >= b for a, b in itertools.pairwise(longest))

    # sorted: within each group of 3 batches the longest example only decreases
    assert descending_steps(draw("sorted", steps=12)) == 11
    assert descending_steps(draw("shuffled", steps=12)) < 9


def test_shuffled_order_depends_only_on_seed_and_epoch() -> None:
    first = draw("shuffled")
    torch.manual_seed(123)  # the global RNG plays no part
    assert draw("shuffled") == first and sorted(first) == list(range(203))
    assert draw("shuffled", epoch=1) != first and draw("shuffled", seed=4) != first


def test_fewer_group_steps_give_more_varied_batches() -> None:
    def mean_spread(indices: list[int]) -> float:
        spread = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in batches(indices, 16)]
        return sum(spread) / len(spread)

    assert mean_spread(draw("shuffled", steps=1)) > 2 * mean_spread(draw("shuffled", steps=12))


def test_tiny_datasets_keep_transformers_order() -> None:
    lengths = [5, 1, 9]
    sampler = EpochLengthGroupedSampler(2, lengths, 0, lambda: 0, order="shuffled")
    assert sorted(sampler) == [0, 1, 2]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="length_group_order: expected one of"):
        EpochLengthGroupedSampler(4, LENGTHS, 0, lambda: 0, order="random")
    with pytest.raises(ValueError, match="length_group_steps: expected an integer >= 1"):
        DataConfig(length_group_steps=0)
    with pytest.raises(ValueError, match="length_group_order: expected one of shuffled, sorted"):
        parse_config(["--length_group_order", "reversed"])


def test_trainer_builds_the_configured_sampler(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        train_sampling_strategy="group_by_length",
        use_cpu=True,
        report_to="none",
    )
    data = [{"input_ids": [1] * n, "labels": [0] * n} for n in LENGTHS]
    trainer = FocalLossTrainer(
        model=tiny_model(),
        args=args,
        train_dataset=data,
        loss_config=LossConfig(),
        label_list=LABELS,
        length_group_order="shuffled",
        length_group_steps=5,
    )
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, EpochLengthGroupedSampler)
    # batches of one optimizer step: 4 x 2 accumulation steps
    assert (sampler.order, sampler.group_steps, sampler.batch_size) == ("shuffled", 5, 8)
    assert sampler.lengths == LENGTHS
