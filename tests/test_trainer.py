"""FocalLossTrainer: loss scale under gradient accumulation, warm-up switch, prior bias init."""

from __future__ import annotations

import math

import pytest
import torch
from fixtures import make_trainer, sample_features, tiny_model

from nerfocal.losses import focal_loss
from nerfocal.trainer import LossDivergedError, find_classifier, init_classifier_bias


def _one_step_delta(tmp_path, batch: int, accumulation: int, **overrides) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    model = tiny_model(seed=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer = make_trainer(
        tmp_path,
        features,
        tokenizer,
        model,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        **overrides,
    )
    trainer.train()
    # plain SGD with lr 1: the update is minus the gradient
    return {k: before[k] - v.detach() for k, v in model.named_parameters()}


@pytest.mark.parametrize("normalization", ["step", "dataset"])
@pytest.mark.parametrize("loss", ["focal", "ce"])
def test_accumulation_gives_the_same_gradient_as_one_large_batch(tmp_path, loss, normalization) -> None:  # type: ignore[no-untyped-def]
    options = dict(loss=loss, alpha="auto", loss_normalization=normalization)
    full = _one_step_delta(tmp_path / "a", 8, 1, **options)
    accumulated = _one_step_delta(tmp_path / "b", 4, 2, **options)
    for name, delta in full.items():
        torch.testing.assert_close(accumulated[name], delta, rtol=1e-5, atol=1e-5, msg=name)
    assert any(d.abs().sum() > 0 for d in full.values())


def test_gradient_matches_the_mean_focal_loss_over_all_tokens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    model = tiny_model(seed=1)
    reference = tiny_model(seed=1)
    delta = _one_step_delta(tmp_path, 4, 2, loss="focal", gamma=2.0)
    batch = trainer_batch(features, tokenizer)
    labels = batch.pop("labels")
    loss = focal_loss(reference(**batch).logits, labels, gamma=2.0, reduction="mean")
    loss.backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(delta[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)
    del model


def trainer_batch(features, tokenizer):  # type: ignore[no-untyped-def]
    from transformers import DataCollatorForTokenClassification

    return dict(DataCollatorForTokenClassification(tokenizer)(features))


def test_one_step_changes_the_parameters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    delta = _one_step_delta(tmp_path, 8, 1, loss="focal")
    assert sum(float(d.abs().sum()) for d in delta.values()) > 0


def test_warmup_switches_from_ce_to_focal_at_the_configured_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(32)
    trainer = make_trainer(
        tmp_path, features, tokenizer, max_steps=5, ce_warmup_steps=3, learning_rate=1e-3, loss="focal"
    )
    seen: list[tuple[int, str]] = []
    original = trainer.current_loss

    def spy(training: bool = True):  # type: ignore[no-untyped-def]
        name, params = original(training)
        if training:
            seen.append((trainer.state.global_step, name))
        return name, params

    trainer.current_loss = spy  # type: ignore[method-assign]
    trainer.train()
    assert seen == [(0, "ce"), (1, "ce"), (2, "ce"), (3, "focal"), (4, "focal")]
    assert {"step": 3, "loss_switch": "focal"} in trainer.state.log_history


def test_warmup_in_epochs_counts_optimizer_steps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(32)
    # 32 sentences / batch 4 / accumulation 2 = 4 optimizer steps per epoch; 0.5 epoch = 2 steps
    trainer = make_trainer(
        tmp_path,
        features,
        tokenizer,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        ce_warmup_epochs=0.5,
        ce_warmup_steps=1,
    )
    assert trainer.ce_warmup_total_steps() == 3


def test_gamma_ramps_linearly_after_the_warmup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    trainer = make_trainer(tmp_path, features, tokenizer, ce_warmup_steps=2, gamma_ramp_steps=4, gamma=2.0)
    gammas = []
    for step in range(8):
        trainer.state.global_step = step
        name, params = trainer.current_loss()
        gammas.append(params.get("gamma") if name == "focal" else None)
    assert gammas == [None, None, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_eval_uses_the_configured_loss_during_warmup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    trainer = make_trainer(tmp_path, features, tokenizer, ce_warmup_steps=10)
    assert trainer.current_loss(training=False)[0] == "focal"
    assert trainer.current_loss(training=True)[0] == "ce"


def test_prior_init_sets_bias_to_log_frequencies() -> None:
    model = tiny_model()
    counts = [800, 50, 0, 100, 50, 0, 0, 0, 0]
    init_classifier_bias(model, counts, floor=1e-5)
    bias = find_classifier(model).bias.detach()
    expected = [math.log(c / 1000) if c else math.log(1e-5) for c in counts]
    torch.testing.assert_close(bias, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert torch.isfinite(bias).all()
    # with zero weights, the initial softmax is the training prior
    with torch.no_grad():
        find_classifier(model).weight.zero_()
    probs = torch.softmax(find_classifier(model)(torch.randn(3, 32)), dim=-1)
    assert abs(float(probs[0, 0].detach()) - 0.8) < 1e-4


def test_prior_init_rejects_wrong_count_length() -> None:
    with pytest.raises(ValueError, match="expected 9 label counts"):
        init_classifier_bias(tiny_model(), [1, 2, 3])


def test_nan_loss_stops_training_naming_the_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(16)
    model = tiny_model()
    with torch.no_grad():
        find_classifier(model).bias.fill_(float("nan"))
    trainer = make_trainer(tmp_path, features, tokenizer, model, max_steps=2)
    with pytest.raises(LossDivergedError, match=r"step 1: .*NaN or infinite.*logits"):
        trainer.train()
    assert (tmp_path / "checkpoint-diverged-0" / "model.safetensors").is_file()


def test_dataset_normalization_divides_by_the_mean_tokens_of_a_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 8 sentences, batch 4: the first step sees sentences 0-3 and is divided by half of all tokens,
    # not by its own token count (the "step" normalisation)
    features, tokenizer = sample_features(8)
    labelled = [sum(y != -100 for y in f["labels"]) for f in features]
    assert sum(labelled[:4]) != sum(labelled) / 2  # the two divisors differ on this data
    reference = tiny_model(seed=1)
    delta = _one_step_delta(tmp_path, 4, 1, loss="focal", gamma=2.0, loss_normalization="dataset")
    batch = trainer_batch(features[:4], tokenizer)
    labels = batch.pop("labels")
    loss = focal_loss(reference(**batch).logits, labels, gamma=2.0, reduction="sum") / (sum(labelled) / 2)
    loss.backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(delta[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_dataset_normalization_leaves_evaluation_a_per_token_mean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    trainer = make_trainer(tmp_path, features, tokenizer, loss_normalization="dataset")
    step = make_trainer(tmp_path, features, tokenizer, loss_normalization="step")
    batch = trainer_batch(features[:2], tokenizer)
    trainer.model.eval()
    step.model.eval()
    with torch.no_grad():
        got, expected = trainer.compute_loss(trainer.model, batch), step.compute_loss(step.model, batch)
    assert float(got.detach()) == pytest.approx(float(expected.detach()))
    # batch 8 over 8 sentences: one step holds every labelled token
    assert trainer.mean_tokens_per_step() == sum(sum(y != -100 for y in f["labels"]) for f in features)


def test_dataset_normalization_without_a_sized_training_set_falls_back_to_the_step_mean(
    tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    features, tokenizer = sample_features(8)
    trainer = make_trainer(tmp_path, features, tokenizer, loss_normalization="dataset")
    step = make_trainer(tmp_path, features, tokenizer, loss_normalization="step")
    trainer.train_dataset = iter(features)  # no __len__, as an IterableDataset
    # train() sets the accumulation steps
    trainer.current_gradient_accumulation_steps = step.current_gradient_accumulation_steps = 1
    batch = trainer_batch(features[:3], tokenizer)
    with caplog.at_level("WARNING", logger="nerfocal.trainer"):
        got = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)
    assert "needs a training set of known length" in caplog.text
    assert trainer.mean_tokens_per_step() is None
    expected = step.compute_loss(step.model, dict(batch), num_items_in_batch=None)
    assert float(got.detach()) == pytest.approx(float(expected.detach()))


def test_evaluation_runs_longest_first_and_hands_back_dataset_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Dev batches are length-sorted (less padding), but compute_metrics and predict see every row in
    dataset order: the logits equal each sentence run alone, and the labels are the features' own."""
    import numpy as np

    features, tokenizer = sample_features(20)
    lengths = [len(f["input_ids"]) for f in features]
    assert lengths != sorted(lengths, reverse=True)  # the order matters here
    model = tiny_model(seed=3)
    seen: list[np.ndarray] = []

    def compute_metrics(p):  # type: ignore[no-untyped-def]
        seen.append(np.asarray(p.label_ids))
        return {"rows": float(len(p.label_ids))}

    trainer = make_trainer(tmp_path, features, tokenizer, model, per_device_eval_batch_size=4)
    trainer.compute_metrics = compute_metrics
    order = trainer._get_eval_sampler(features)
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    assert trainer.evaluate(features)["eval_rows"] == 20
    output = trainer.predict(features)
    model.eval()
    for i, feature in enumerate(features):
        n = lengths[i]
        assert list(seen[0][i][:n]) == feature["labels"]  # compute_metrics: dataset order
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0].numpy()
        np.testing.assert_allclose(output.predictions[i][:n], alone, atol=1e-5)
        assert list(output.label_ids[i][:n]) == feature["labels"]
    # the order is kept for the dataset it was computed on only: another one of the same size gets its own
    shuffled = features[::-1]
    other = trainer._get_eval_sampler(shuffled)
    assert trainer._get_eval_sampler(features) == order
    assert [len(shuffled[i]["input_ids"]) for i in other] == sorted(lengths, reverse=True)
    assert other != order
