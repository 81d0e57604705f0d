"""alpha_normalization prior: the class weights rescaled so that a training token weighs 1 on average
(issue 15; docs/losses.md "Normalised alpha")."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from fixtures import (
    LABELS,
    SAMPLE,
    build_tiny_model,
    build_tokenizer,
    make_trainer,
    sample_features,
    tiny_model,
)

from nerfocal.config import LossConfig, parse_config
from nerfocal.losses import LOSS_NAMES, normalize_alpha, resolve_alpha

COUNTS = [100, 1, 1, 3, 1, 3, 2, 4, 1]  # make_trainer's label counts, 116 in all
PRIOR = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
FORMS = [0.75, "auto", [2.0, 1.0, 1.0, 0.5, 0.5, 3.0, 3.0, 1.0, 1.0], {"O": 0.5, "B-PER": 4.0}]


def _mean_weight(alpha: torch.Tensor) -> float:
    return float((PRIOR * alpha.to(torch.float64)).sum())


@pytest.mark.parametrize("alpha", FORMS, ids=["float", "auto", "list", "dict"])
def test_prior_normalisation_makes_the_mean_token_weight_one_and_keeps_the_ratios(alpha) -> None:  # type: ignore[no-untyped-def]
    plain = resolve_alpha(alpha, LABELS, COUNTS)
    normalised = resolve_alpha(alpha, LABELS, COUNTS, normalization="prior")
    assert plain is not None and normalised is not None
    assert _mean_weight(plain) != pytest.approx(1.0)  # the identity is not already true by chance
    assert _mean_weight(normalised) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(normalised, plain / _mean_weight(plain))  # same ratios between classes
    assert normalised.dtype == torch.float32


def test_scalar_alpha_on_known_counts_gives_the_hand_computed_weights() -> None:
    # pi_O = 100 / 116: mean weight = 0.75 pi_O + 0.25 (1 - pi_O) = 0.681034...
    mean = 0.75 * 100 / 116 + 0.25 * 16 / 116
    normalised = resolve_alpha(0.75, LABELS, COUNTS, normalization="prior")
    assert normalised is not None
    assert normalised[0].item() == pytest.approx(0.75 / mean, rel=1e-6)
    assert normalised[1:].tolist() == pytest.approx([0.25 / mean] * 8, rel=1e-6)


def test_a_label_absent_from_training_keeps_its_ratio_but_adds_nothing_to_the_mean() -> None:
    counts = [90, 10, 0]
    normalised = normalize_alpha(torch.tensor([1.0, 2.0, 5.0]), ["O", "B-X", "I-X"], counts)
    assert normalised.tolist() == pytest.approx([1 / 1.1, 2 / 1.1, 5 / 1.1])  # mean 0.9 x 1 + 0.1 x 2


def test_none_normalisation_leaves_alpha_as_given() -> None:
    given = resolve_alpha(0.75, LABELS, COUNTS, normalization="none")
    assert given is not None and given.tolist() == [0.75] + [0.25] * 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(alpha=None, normalization="prior"), "alpha_normalization 'prior': expected an alpha"),
        (
            dict(alpha=0.75, normalization="mean"),
            "alpha_normalization: expected one of none, prior, got 'mean'",
        ),
        (dict(alpha=0.75, normalization="prior", label_counts=None), "alpha_normalization 'prior'"),
        (dict(alpha=0.75, normalization="prior", label_counts=[1, 2]), "expected 9 label counts"),
        (dict(alpha={"O": 0.0}, normalization="prior", label_counts=[5] + [0] * 8), "expected alpha > 0"),
    ],
)
def test_resolve_alpha_rejects_what_cannot_be_normalised(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    options = {"label_counts": COUNTS, **kwargs}
    alpha = options.pop("alpha")
    with pytest.raises(ValueError, match=message):
        resolve_alpha(alpha, LABELS, **options)


def test_config_rejects_prior_without_alpha_and_unknown_values_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"alpha_normalization: 'prior' rescales alpha.*got alpha none"):
        LossConfig(alpha_normalization="prior")
    with pytest.raises(ValueError, match="alpha_normalization") as err:
        parse_config(["--alpha", "0.75", "--alpha_normalization", "sum"])
    assert "expected one of none, prior, got 'sum'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="alpha_normalization"):
        parse_config(["--alpha_normalization", "prior"])  # alpha none


def test_yaml_key_and_flag_set_it_and_the_saved_config_keeps_it(tmp_path: Path) -> None:
    from nerfocal.config import save_config

    cfg = tmp_path / "run.yaml"
    cfg.write_text("alpha: auto\nalpha_normalization: prior\noutput_dir: out\n")
    configs = parse_config([str(cfg)])
    assert configs[2].alpha_normalization == "prior" and configs[2].alpha == "auto"
    assert parse_config([str(cfg), "--alpha_normalization", "none"])[2].alpha_normalization == "none"
    assert LossConfig().alpha_normalization == "none"
    save_config(tmp_path / "saved.yaml", *configs)
    saved = yaml.safe_load((tmp_path / "saved.yaml").read_text())
    assert saved["alpha_normalization"] == "prior" and saved["alpha"] == "auto"
    assert parse_config([str(tmp_path / "saved.yaml")])[2].alpha_normalization == "prior"


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_gets_the_normalised_vector_from_the_trainer(tmp_path: Path, loss: str) -> None:
    features, tokenizer = sample_features(4)
    trainer = make_trainer(
        tmp_path, features, tokenizer, loss=loss, alpha="auto", alpha_normalization="prior"
    )
    expected = resolve_alpha("auto", LABELS, COUNTS, normalization="prior")
    torch.testing.assert_close(trainer.alpha, expected)
    assert trainer.loss_params(loss)["alpha"] is trainer.alpha
    assert _mean_weight(trainer.alpha) == pytest.approx(1.0, abs=1e-6)


def test_the_training_loss_on_a_fixed_batch_is_the_hand_computed_normalised_focal_loss(
    tmp_path: Path,
) -> None:
    from transformers import DataCollatorForTokenClassification

    features, tokenizer = sample_features(8)
    model = tiny_model(seed=3)
    options = dict(
        loss="focal", gamma=2.0, alpha=0.75, alpha_normalization="prior", loss_normalization="step"
    )
    trainer = make_trainer(tmp_path, features, tokenizer, model, **options)
    batch = dict(DataCollatorForTokenClassification(tokenizer)(features))
    labels = batch["labels"]  # [B, S]
    count = int((labels != -100).sum())
    model.train()  # dropout 0: the same logits as below
    loss = trainer.compute_loss(model, batch, num_items_in_batch=torch.tensor(count))
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits  # [B, S, C]
    valid = labels != -100
    log_p = torch.log_softmax(logits[valid].double(), dim=-1)  # [N, C]
    target = labels[valid]  # [N]
    log_pt = log_p[torch.arange(len(target)), target]
    mean = 0.75 * 100 / 116 + 0.25 * 16 / 116  # sum_c pi_c alpha_c on COUNTS
    weight = torch.where(target == 0, 0.75 / mean, 0.25 / mean).double()
    hand = (-weight * (1 - log_pt.exp()) ** 2 * log_pt).sum() / count
    assert loss.item() == pytest.approx(hand.item(), rel=1e-5)
    plain = make_trainer(
        tmp_path / "plain", features, tokenizer, model, **{**options, "alpha_normalization": "none"}
    )
    unnormalised = plain.compute_loss(model, batch, num_items_in_batch=torch.tensor(count))
    assert loss.item() == pytest.approx(unnormalised.item() / mean, rel=1e-5)  # a factor 1 / 0.681


def test_a_training_run_logs_and_records_the_normalised_vector(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    from nerfocal.cli import main

    encoder = build_tiny_model(tmp_path / "encoder")
    out = tmp_path / "run"
    argv = ["train", "--model_name_or_path", str(encoder), "--train_file", str(SAMPLE / "train.conll"),
            "--max_train_samples", "40", "--max_steps", "1", "--output_dir", str(out), "--use_cpu", "true",
            "--disable_tqdm", "true", "--max_length", "64", "--temperature_scaling", "false",
            "--alpha", "0.75", "--alpha_normalization", "prior"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="nerfocal"):
        assert main(argv) == 0
    alpha = json.loads((out / "eval_results.json").read_text())["train"]["alpha"]
    assert set(alpha) == set(LABELS)  # (eval_results.json sorts its keys)
    assert any("alpha (prior normalisation)" in r.getMessage() for r in caplog.records)
    # the recorded vector satisfies the identity on the counts of the run's encoded training positions
    from nerfocal.training import prepare_data

    prepared = prepare_data(parse_config(argv[1:])[1], build_tokenizer())
    total = sum(prepared.label_counts)
    mean = sum(c / total * alpha[label] for c, label in zip(prepared.label_counts, LABELS, strict=True))
    assert mean == pytest.approx(1.0, abs=1e-3)  # the vector is rounded to 4 digits
    assert alpha["B-PER"] == pytest.approx(alpha["O"] / 3, rel=1e-3)
    assert yaml.safe_load((out / "nerfocal_config.yaml").read_text())["alpha_normalization"] == "prior"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| `alpha_normalization` | `prior` |" in card
    weights_row = card.split("| class weights used | ")[1].split("\n")[0]
    assert weights_row.startswith(f"`O` {alpha['O']:g}, `B-EVENT` {alpha['B-EVENT']:g}, ")  # in id order
