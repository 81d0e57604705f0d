"""Tests for nerfocal.losses: the math (CE identity, focal factor, margin family), numerics, alpha, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfocal.losses import (
    IGNORE_INDEX,
    LOSS_NAMES,
    LOSS_PARAMS,
    REDUCTIONS,
    AdaptiveFocalLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    MarginLoss,
    SoftMarginLoss,
    adaptive_focal_loss,
    binary_focal_loss,
    binary_soft_margin_loss,
    compute_loss,
    cross_entropy_loss,
    dice_loss,
    focal_loss,
    margin_loss,
    resolve_alpha,
    soft_margin_loss,
)

LABELS = ["O", "B-PER", "I-PER", "B-LOC"]
C = len(LABELS)


def make_batch(b: int = 3, s: int = 5, c: int = C, dtype: torch.dtype = torch.float32, seed: int = 0):
    """Random logits [B, S, C] (leaf, requires grad) and labels [B, S] with some IGNORE_INDEX."""
    gen = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(b, s, c, generator=gen)).to(dtype).requires_grad_()
    labels = torch.randint(0, c, (b, s), generator=gen)
    labels[0, 0] = IGNORE_INDEX
    labels[-1, -2:] = IGNORE_INDEX
    return logits, labels


def value_and_grad(fn, logits, labels, **kwargs):
    leaf = logits.detach().clone().requires_grad_()
    out = fn(leaf, labels, **kwargs)
    out.sum().backward()
    return out.detach(), leaf.grad


def ce_reference(logits, labels, reduction):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction=reduction)


# --- cross-entropy identities -------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("fn", [cross_entropy_loss, lambda x, y, **kw: focal_loss(x, y, gamma=0.0, **kw)])
def test_ce_and_focal_gamma_zero_equal_f_cross_entropy_in_values_and_grads(fn, reduction):
    logits, labels = make_batch()
    got, got_grad = value_and_grad(fn, logits, labels, reduction=reduction)
    want, want_grad = value_and_grad(ce_reference, logits, labels, reduction=reduction)
    torch.testing.assert_close(got.reshape(-1), want.reshape(-1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_over_ce_per_token_is_alpha_times_modulating_factor(gamma):
    logits, labels = make_batch()
    alpha = torch.tensor([0.7, 0.3, 1.5, 0.2])
    fl = focal_loss(logits, labels, gamma=gamma, alpha=alpha, reduction="none")
    ce = cross_entropy_loss(logits, labels, reduction="none")
    valid = labels != IGNORE_INDEX
    p_t = logits.softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    want = alpha[labels.clamp(min=0)] * (1 - p_t) ** gamma
    torch.testing.assert_close((fl / ce)[valid], want[valid], rtol=1e-5, atol=1e-6)
    assert torch.all(fl[~valid] == 0)


@settings(max_examples=25, deadline=None)
@given(gamma=st.floats(0.0, 5.0), seed=st.integers(0, 1000))
def test_focal_never_exceeds_ce_without_alpha(gamma, seed):
    logits, labels = make_batch(seed=seed)
    fl = focal_loss(logits, labels, gamma=gamma, reduction="none")
    ce = cross_entropy_loss(logits, labels, reduction="none")
    assert torch.all(fl <= ce + 1e-6)


# --- gradcheck and numerics ---------------------------------------------------------------------

GRADCHECK_CASES = [
    ("focal", {"gamma": 0.5}),
    ("focal", {"gamma": 2.0}),
    ("focal", {"gamma": 2.0, "alpha": torch.tensor([0.75, 0.25, 0.25, 0.5], dtype=torch.float64)}),
    ("soft_margin", {"margin": 0.6, "k": 10.0}),
    ("focal_adaptive", {}),
    ("dice", {"power": 1.0, "smooth": 1.0}),
    ("dice", {"power": 0.5, "smooth": 0.1}),
]


@pytest.mark.parametrize(("name", "params"), GRADCHECK_CASES)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_float64(name, params, reduction):
    logits, labels = make_batch(b=2, s=3, dtype=torch.float64, seed=1)
    leaf = logits.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: compute_loss(name, x, labels, reduction=reduction, **params), leaf
    )


def extreme_logits(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows: true class at +1e4 (p_t -> 1), true class at -1e4 (p_t -> 0), a tie at +1e4."""
    logits = torch.tensor(
        [[1e4, -1e4, -1e4, -1e4], [-1e4, 1e4, -1e4, -1e4], [1e4, 1e4, -1e4, -1e4], [1e4, -1e4, 0.0, 1e3]]
    )
    return logits.to(dtype).requires_grad_(), torch.tensor([0, 0, 1, 0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_is_finite_at_extreme_logits(dtype, gamma):
    logits, labels = extreme_logits(dtype)
    loss = focal_loss(logits, labels, gamma=gamma, reduction="none")
    loss.sum().backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    loss = loss.detach()
    assert float(loss[0]) == 0 and float(loss[1]) == pytest.approx(2e4, rel=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_is_finite_at_extreme_logits(dtype, name):
    logits, labels = extreme_logits(dtype)
    loss = compute_loss(name, logits, labels, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_batch_gives_zero_with_zero_grad(name, reduction):
    logits = torch.randn(2, 3, C, requires_grad=True)
    labels = torch.full((2, 3), IGNORE_INDEX)
    loss = compute_loss(name, logits, labels, reduction=reduction)
    loss.sum().backward()
    assert torch.all(loss == 0) and loss.shape == ((2, 3) if reduction == "none" else ())
    assert logits.grad is not None and torch.all(logits.grad == 0)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bsc_and_nc_shapes_agree(name, reduction):
    logits, labels = make_batch()
    got_3d = compute_loss(name, logits, labels, reduction=reduction)
    got_2d = compute_loss(name, logits.reshape(-1, C), labels.reshape(-1), reduction=reduction)
    torch.testing.assert_close(got_3d.reshape(-1), got_2d.reshape(-1))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_sum_is_mean_times_valid_count_and_sum_of_none(name):
    logits, labels = make_batch()
    n_valid = int((labels != IGNORE_INDEX).sum())
    total = compute_loss(name, logits, labels, reduction="sum")
    torch.testing.assert_close(total, compute_loss(name, logits, labels, reduction="mean") * n_valid)
    torch.testing.assert_close(total, compute_loss(name, logits, labels, reduction="none").sum())


# --- alpha --------------------------------------------------------------------------------------


def test_resolve_alpha_forms():
    assert resolve_alpha(None, LABELS) is None
    torch.testing.assert_close(resolve_alpha([1, 2, 3, 4], LABELS), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(resolve_alpha({"B-PER": 3.0}, LABELS), torch.tensor([1.0, 3.0, 1.0, 1.0]))
    torch.testing.assert_close(resolve_alpha(0.75, LABELS), torch.tensor([0.75, 0.25, 0.25, 0.25]))
    auto = resolve_alpha("auto", LABELS, label_counts=[81, 9, 10, 0])
    pi_o = 0.81
    a_o = math.sqrt(pi_o) / (math.sqrt(pi_o) + math.sqrt(1 - pi_o))
    torch.testing.assert_close(auto, torch.tensor([a_o, 1 - a_o, 1 - a_o, 1 - a_o]))
    assert auto.dtype == torch.float32 and auto[0] > auto[1] > 0
    balanced = resolve_alpha("auto", ["X", "O"], label_counts=[5, 5])
    torch.testing.assert_close(balanced, torch.tensor([0.5, 0.5]))


def test_alpha_weights_tokens_but_not_the_mean_denominator():
    logits, labels = make_batch()
    alpha = resolve_alpha([0.1, 2.0, 0.5, 3.0], LABELS)
    valid = labels != IGNORE_INDEX
    ce = ce_reference(logits, labels, "none").reshape(labels.shape)
    weighted = alpha[labels.clamp(min=0)] * ce
    got = focal_loss(logits, labels, gamma=0.0, alpha=alpha)
    torch.testing.assert_close(got, weighted[valid].sum() / valid.sum())
    torch_weighted = F.cross_entropy(logits.reshape(-1, C), labels.reshape(-1), weight=alpha)
    assert not torch.allclose(got, torch_weighted)
    torch.testing.assert_close(
        focal_loss(logits, labels, gamma=0.0, alpha=alpha, reduction="sum"), weighted[valid].sum()
    )


# --- errors -------------------------------------------------------------------------------------

LOGITS, LABELS_T = torch.zeros(2, C), torch.tensor([0, 1])

INVALID_CALLS = {
    "gamma < 0": lambda: focal_loss(LOGITS, LABELS_T, gamma=-0.5),
    "gamma nan": lambda: focal_loss(LOGITS, LABELS_T, gamma=math.nan),
    "unknown reduction": lambda: focal_loss(LOGITS, LABELS_T, reduction="avg"),
    "margin 0.5": lambda: margin_loss(LOGITS, LABELS_T, margin=0.5),
    "margin 1": lambda: soft_margin_loss(LOGITS, LABELS_T, margin=1.0),
    "k 0": lambda: soft_margin_loss(LOGITS, LABELS_T, k=0.0),
    "k < 0": lambda: SoftMarginLoss(k=-1.0),
    "dice power < 0": lambda: dice_loss(LOGITS, LABELS_T, power=-1.0),
    "adaptive lengths": lambda: adaptive_focal_loss(LOGITS, LABELS_T, gammas=(5.0, 3.0), thresholds=()),
    "adaptive order": lambda: adaptive_focal_loss(LOGITS, LABELS_T, gammas=(5, 3, 1), thresholds=(0.5, 0.2)),
    "alpha list length": lambda: resolve_alpha([1.0, 2.0], LABELS),
    "alpha dict label": lambda: resolve_alpha({"B-ORG": 2.0}, LABELS),
    "alpha scalar > 1": lambda: resolve_alpha(1.5, LABELS),
    "alpha negative": lambda: resolve_alpha([1.0, -1.0, 1.0, 1.0], LABELS),
    "alpha unknown string": lambda: resolve_alpha("balanced", LABELS),
    "alpha auto no counts": lambda: resolve_alpha("auto", LABELS),
    "alpha auto bad counts": lambda: resolve_alpha("auto", LABELS, label_counts=[1, 2]),
    "alpha scalar no O": lambda: resolve_alpha(0.5, ["B-PER", "I-PER"]),
    "alpha tensor wrong shape": lambda: focal_loss(LOGITS, LABELS_T, alpha=torch.ones(3)),
    "alpha as list": lambda: focal_loss(LOGITS, LABELS_T, alpha=[1.0] * C),  # type: ignore[arg-type]
    "unknown loss": lambda: compute_loss("hinge", LOGITS, LABELS_T),
    "unknown param": lambda: compute_loss("ce", LOGITS, LABELS_T, gamma=2.0),
    "label >= C": lambda: cross_entropy_loss(LOGITS, torch.tensor([0, C])),
    "label < 0": lambda: focal_loss(LOGITS, torch.tensor([-1, 0])),
    "float labels": lambda: focal_loss(LOGITS, torch.tensor([0.0, 1.0])),
    "shape mismatch": lambda: focal_loss(LOGITS, torch.tensor([0, 1, 2])),
    "binary targets": lambda: binary_focal_loss(torch.zeros(2), torch.tensor([0.0, 0.5])),
}


@pytest.mark.parametrize("call", INVALID_CALLS.values(), ids=INVALID_CALLS.keys())
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError, match="expected"):
        call()


# --- margin family ------------------------------------------------------------------------------


def test_margin_gives_zero_loss_and_zero_grad_once_p_t_passes_m():
    logits = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]], requires_grad=True)  # p_t 0.87, 0.35
    labels = torch.tensor([0, 0])
    loss = margin_loss(logits, labels, margin=0.6, reduction="none")
    loss.sum().backward()
    assert loss[0] == 0 and torch.all(logits.grad[0] == 0)
    torch.testing.assert_close(loss[1], ce_reference(logits, labels, "none")[1])
    assert torch.all(logits.grad[1] != 0)


def test_soft_margin_tends_to_margin_as_k_grows():
    logits, labels = make_batch(b=4, s=8, seed=3)
    p_t = logits.softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    far = (labels != IGNORE_INDEX) & ((p_t - 0.6).abs() > 0.02)
    assert far.sum() > 20
    hard, hard_grad = value_and_grad(margin_loss, logits, labels, margin=0.6, reduction="none")
    soft, soft_grad = value_and_grad(soft_margin_loss, logits, labels, margin=0.6, k=1e4, reduction="none")
    torch.testing.assert_close(soft[far], hard[far], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(soft_grad[far], hard_grad[far], rtol=1e-5, atol=1e-6)


def test_binary_soft_margin_with_k1_equals_binary_focal_with_gamma1():
    x = torch.linspace(-8, 8, 41, dtype=torch.float64)
    for target in (0.0, 1.0):
        t = torch.full_like(x, target)
        soft = binary_soft_margin_loss(x, t, k=1.0, margin=0.5, reduction="none")
        focal = binary_focal_loss(x, t, gamma=1.0, reduction="none")
        torch.testing.assert_close(soft, focal, rtol=0, atol=1e-6)
        sign = 1.0 if target else -1.0  # the closed forms of the derivation
        torch.testing.assert_close(soft, -torch.sigmoid(-sign * x) * F.logsigmoid(sign * x))


def test_soft_margin_with_two_classes_is_the_binary_form():
    x = torch.linspace(-6, 6, 13, dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(x), x], dim=-1)  # [N, 2], log-odds of class 1 = x
    labels = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0))
    got = soft_margin_loss(logits, labels, margin=0.7, k=3.0, reduction="none")
    want = binary_soft_margin_loss(x, labels.double(), margin=0.7, k=3.0, reduction="none")
    torch.testing.assert_close(got, want)


# --- adaptive focal and dice --------------------------------------------------------------------


def test_adaptive_focal_uses_the_gamma_of_each_tokens_p_t_bucket():
    logits, labels = make_batch(b=4, s=8, seed=5)
    p_t = logits.softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    gammas, thresholds = (5.0, 3.0, 1.0), (0.2, 0.5)
    got = adaptive_focal_loss(logits, labels, gammas=gammas, thresholds=thresholds, reduction="none")
    per_gamma = [focal_loss(logits, labels, gamma=g, reduction="none") for g in gammas]
    want = torch.where(p_t < 0.2, per_gamma[0], torch.where(p_t < 0.5, per_gamma[1], per_gamma[2]))
    assert (p_t < 0.2).any() and ((p_t >= 0.2) & (p_t < 0.5)).any() and (p_t >= 0.5).any()
    torch.testing.assert_close(got, want)
    default = adaptive_focal_loss(logits, labels, reduction="none")  # FLSD-53
    torch.testing.assert_close(default, torch.where(p_t < 0.2, per_gamma[0], per_gamma[1]))


def test_adaptive_focal_has_finite_grad_at_p_t_one():
    logits, labels = extreme_logits(torch.float32)
    adaptive_focal_loss(logits, labels, gammas=(0.5, 0.2), thresholds=(0.2,)).backward()
    assert torch.isfinite(logits.grad).all()


def test_dice_value_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p_t = 0.5 and 0.75 for label 0
    labels = torch.tensor([0, 0])
    got = dice_loss(logits, labels, power=1.0, smooth=1.0, reduction="none")
    q = torch.tensor([0.5 * 0.5, 0.25 * 0.75])
    torch.testing.assert_close(got, 1 - (2 * q + 1) / (q + 1 + 1))
    torch.testing.assert_close(got[0], torch.tensor(1 / 3))
    plain = dice_loss(logits, labels, power=0.0, smooth=0.0, reduction="none")
    torch.testing.assert_close(plain, torch.tensor([1 - 1.0 / 1.5, 1 - 1.5 / 1.75]))


# --- dispatcher and modules ---------------------------------------------------------------------


def test_loss_params_match_the_function_signatures():
    import inspect

    from nerfocal import losses

    for name, spec in losses.LOSSES.items():
        fn = spec.function
        kw = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert sorted(LOSS_PARAMS[name]) == sorted(set(kw) - {"reduction"})
    assert tuple(losses.LOSSES) == LOSS_NAMES


@pytest.mark.parametrize(
    ("module", "name", "params"),
    [
        (CrossEntropyLoss, "ce", {}),
        (FocalLoss, "focal", {"gamma": 1.5}),
        (AdaptiveFocalLoss, "focal_adaptive", {"gammas": (4.0, 2.0), "thresholds": (0.3,)}),
        (MarginLoss, "margin", {"margin": 0.7}),
        (SoftMarginLoss, "soft_margin", {"margin": 0.7, "k": 5.0}),
        (DiceLoss, "dice", {"power": 0.5, "smooth": 0.5}),
    ],
)
def test_modules_delegate_to_the_functions(module, name, params):
    logits, labels = make_batch()
    alpha = resolve_alpha(0.7, LABELS)
    loss_fn = module(**params, alpha=alpha, reduction="sum")
    torch.testing.assert_close(
        loss_fn(logits, labels), compute_loss(name, logits, labels, reduction="sum", alpha=alpha, **params)
    )
    assert "alpha" not in loss_fn.state_dict() and loss_fn.double().alpha.dtype == torch.float64
