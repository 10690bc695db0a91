"""Losses: hand-computed values, the references' formulas, and finiteness on degenerate inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dcseg.losses import (
    ABLATIONS,
    LossTerms,
    anatomical_contrastive_loss,
    deep_supervision_loss,
    dice_loss,
    global_ssim,
    modality_contrastive_loss,
    pairwise_global_ssim,
    reconstruction_loss,
    sigmoid_contrastive_loss,
    total_loss,
    weighted_cross_entropy,
)
from dcseg.models.outputs import TrainOutput

C1, C2 = 1e-4, 9e-4


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def random_maps(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------------------------------
# SSIM (eq. 3)


def test_ssim_of_identical_maps_is_one():
    a = random_maps(3, 5, 4, 6, 7)
    torch.testing.assert_close(global_ssim(a, a), torch.ones(3, dtype=torch.float64))


def test_ssim_hand_values():
    a = random_maps(2, 4, 5, 6)
    a = a - a.mean(dim=(-3, -2, -1), keepdim=True)  # zero mean per channel: the luminance term is C1/C1 = 1
    var = a.square().mean(dim=(-3, -2, -1))
    expected_anti = ((-2 * var + C2) / (2 * var + C2)).mean()
    torch.testing.assert_close(global_ssim(a, -a), expected_anti)
    ones, zeros = torch.ones(3, 4, 4, 4), torch.zeros(3, 4, 4, 4)
    # constant maps: no structure (0 + C2 over 0 + C2), luminance C1 / (1 + C1)
    torch.testing.assert_close(global_ssim(ones, zeros), torch.tensor(C1 / (1 + C1)))
    torch.testing.assert_close(global_ssim(2 * ones, 2 * ones), torch.tensor(1.0))


def test_ssim_uses_population_statistics_and_broadcasts():
    a, b = random_maps(4, 3, 5, 5, 5, seed=1), random_maps(1, 3, 5, 5, 5, seed=2)
    mu_a, mu_b = a.mean((-3, -2, -1)), b.mean((-3, -2, -1))
    var_a, var_b = a.var((-3, -2, -1), unbiased=False), b.var((-3, -2, -1), unbiased=False)
    cov = (a * b).mean((-3, -2, -1)) - mu_a * mu_b  # mean of products minus product of means
    expected = (((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))).mean(-1)
    torch.testing.assert_close(global_ssim(a, b), expected)


def test_pairwise_ssim_matches_global_ssim():
    maps = random_maps(5, 3, 4, 5, 6, seed=3)
    expected = global_ssim(maps[:, None], maps[None, :])
    torch.testing.assert_close(pairwise_global_ssim(maps), expected)
    torch.testing.assert_close(pairwise_global_ssim(maps), pairwise_global_ssim(maps).T)


# --------------------------------------------------------------------------------------------------------------------
# Sigmoid contrastive loss (eqs. 1, 2, 4)


def test_sigmoid_contrastive_loss_hand_value():
    similarity = torch.tensor([[1.0, 0.2], [-0.5, 0.0]])
    positive = torch.tensor([[True, False], [True, False]])
    t = 2.0
    # -log sigmoid(f t s) = softplus(-f t s)
    expected = (softplus(-2.0) + softplus(0.4) + softplus(1.0) + softplus(0.0)) / 4
    assert sigmoid_contrastive_loss(similarity, positive, t).item() == pytest.approx(expected, rel=1e-6)


def test_sigmoid_contrastive_loss_separated_vs_swapped():
    positive = torch.eye(4, dtype=torch.bool)
    aligned = positive.double() * 2 - 1  # +1 on positives, -1 on negatives
    t = 10.0
    assert sigmoid_contrastive_loss(aligned, positive, t).item() == pytest.approx(softplus(-t), rel=1e-9)
    assert sigmoid_contrastive_loss(aligned, ~positive, t).item() == pytest.approx(softplus(t), rel=1e-9)


def test_temperature_is_differentiable():
    t = torch.tensor(10.0, requires_grad=True)
    loss = sigmoid_contrastive_loss(torch.tensor([[0.3, -0.2], [0.1, 0.9]]), torch.eye(2, dtype=torch.bool), t)
    loss.backward()
    assert torch.isfinite(t.grad) and t.grad != 0


# --------------------------------------------------------------------------------------------------------------------
# L_ana and L_mod


def test_anatomical_loss_is_near_its_minimum_for_separated_subjects_and_large_when_swapped():
    pattern = random_maps(3, 4, 4, 4, seed=4)
    pattern = pattern - pattern.mean(dim=(-3, -2, -1), keepdim=True)
    # subject 0: every modality shows the pattern; subject 1 its negative -> SSIM +1 within, about -1 across
    anatomy = torch.stack([pattern.expand(2, -1, -1, -1, -1), (-pattern).expand(2, -1, -1, -1, -1)])  # [N=2, M=2]
    t = 10.0
    separated = anatomical_contrastive_loss(anatomy, t).item()
    assert separated == pytest.approx(softplus(-t), abs=1e-3)
    # swapped labelling: the same maps, but "subjects" now pair anti-correlated maps. Every pair except the self-pairs
    # and half of the others is wrong: 8 of the 16 pairs cost about t each
    swapped = anatomical_contrastive_loss(anatomy.transpose(0, 1), t).item()
    assert swapped == pytest.approx((softplus(-t) + softplus(t)) / 2, rel=1e-3)


def test_anatomical_loss_positives_are_same_subject():
    anatomy = random_maps(3, 2, 2, 4, 4, 4, seed=5)
    similarity = pairwise_global_ssim(anatomy.flatten(0, 1))
    subject = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = sigmoid_contrastive_loss(similarity, subject[:, None] == subject[None], 7.0)
    torch.testing.assert_close(anatomical_contrastive_loss(anatomy, 7.0), expected)


def test_modality_loss_hand_values():
    t = 10.0
    e = torch.eye(4, dtype=torch.float64)
    # N = 3 subjects, each modality its own orthogonal direction (any scale): positives cos 1, negatives cos 0
    vectors = torch.stack([e * (i + 1) for i in range(3)])
    expected = (softplus(-t) + 3 * math.log(2)) / 4  # a quarter of the pairs are positives
    assert modality_contrastive_loss(vectors, t).item() == pytest.approx(expected, rel=1e-9)
    # two modalities pointing opposite ways: the minimum, and the maximum when the labelling is swapped
    u = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    opposite = torch.stack([torch.stack([u, -u]), torch.stack([2 * u, -3 * u])])  # [N=2, M=2, D=3]
    assert modality_contrastive_loss(opposite, t).item() == pytest.approx(softplus(-t), rel=1e-9)
    swapped = modality_contrastive_loss(opposite.transpose(0, 1), t).item()  # 8 of 16 pairs wrong (self-pairs right)
    assert swapped == pytest.approx((softplus(-t) + softplus(t)) / 2, rel=1e-9)


def test_contrastive_losses_are_finite_for_degenerate_inputs():
    constant = torch.ones(2, 3, 4, 3, 3, 3, requires_grad=True)  # constant feature maps
    zero_maps = torch.zeros(2, 3, 4, 3, 3, 3, requires_grad=True)
    zero_vectors = torch.zeros(2, 3, 8, requires_grad=True)
    t = torch.tensor(10.0, requires_grad=True)
    for loss in (anatomical_contrastive_loss(constant, t), anatomical_contrastive_loss(zero_maps, t),
                 modality_contrastive_loss(zero_vectors, t)):
        loss.backward()
        assert torch.isfinite(loss)
    for tensor in (constant, zero_maps, zero_vectors, t):
        assert torch.isfinite(tensor.grad).all()


# --------------------------------------------------------------------------------------------------------------------
# Segmentation losses (the references' criterions, on logits)


def reference_weighted_ce(probs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """The reference formula, term by term on probabilities and a one-hot target (test-only re-statement)."""
    weights = 1 - one_hot.sum(dim=(2, 3, 4)) / one_hot.sum(dim=(1, 2, 3, 4))[:, None]
    terms = -weights[..., None, None, None] * one_hot * torch.log(probs.clamp(0.005, 1))
    return terms.sum(1).mean()


def reference_dice(probs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    dims = (0, 2, 3, 4)
    dice = 2 * (probs * one_hot).sum(dims) / (probs.sum(dims) + one_hot.sum(dims) + 1e-7)
    return 1 - dice.mean()


def test_segmentation_losses_match_the_reference_formulas():
    logits = 3 * random_maps(2, 4, 6, 5, 4, seed=6)
    labels = torch.randint(0, 4, (2, 6, 5, 4), generator=torch.Generator().manual_seed(7))
    probs, one_hot = torch.softmax(logits, 1), F.one_hot(labels, 4).permute(0, 4, 1, 2, 3).double()
    torch.testing.assert_close(weighted_cross_entropy(logits, labels), reference_weighted_ce(probs, one_hot))
    torch.testing.assert_close(dice_loss(logits, labels), reference_dice(probs, one_hot))


def test_segmentation_loss_hand_values():
    k = 4
    uniform = torch.zeros(1, k, 2, 2, 2)  # p = 1/K everywhere
    labels = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    labels[0, 0] = 1  # half background, half class 1: both weights 1/2
    assert weighted_cross_entropy(uniform, labels).item() == pytest.approx(0.5 * math.log(k), rel=1e-6)
    # Dice: classes 0 and 1 have d = 2 (V/2K) / (V/K + V/2) = 2 / (K + 2); classes 2, 3 are absent (d = 0)
    assert dice_loss(uniform, labels).item() == pytest.approx(1 - (2 * 2 / (k + 2)) / k, rel=1e-6)


def test_all_background_crop_is_finite():
    logits = random_maps(2, 4, 4, 4, 4, dtype=torch.float32).requires_grad_()
    labels = torch.zeros(2, 4, 4, 4, dtype=torch.long)
    ce, dice = weighted_cross_entropy(logits, labels), dice_loss(logits, labels)
    assert ce.item() == 0.0  # background weight 1 - 1 = 0
    (ce + dice).backward()
    assert torch.isfinite(logits.grad).all()
    uniform = torch.zeros(1, 4, 2, 2, 2)
    assert dice_loss(uniform, labels[:1, :2, :2, :2]).item() == pytest.approx(1 - (2 / 5) / 4, rel=1e-6)


def test_cross_entropy_has_no_gradient_below_the_probability_floor():
    logits = torch.tensor([[20.0, 0.0]]).reshape(1, 2, 1, 1, 1).repeat(1, 1, 2, 1, 1).requires_grad_()
    labels = torch.tensor([1, 0]).reshape(1, 2, 1, 1)  # voxel 0 confidently wrong: p = 2e-9 < 0.005
    loss = weighted_cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(-0.5 * math.log(0.005) / 2, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[0, :, 0] == 0)


def test_deep_supervision_upsamples_probabilities_like_the_reference():
    labels = torch.randint(0, 3, (2, 8, 8, 8), generator=torch.Generator().manual_seed(8))
    logits = [random_maps(2, 3, 8, 8, 8, seed=9), random_maps(2, 3, 4, 4, 4, seed=10)]
    expected = 0
    for level in logits:
        probs = F.interpolate(torch.softmax(level, 1), size=(8, 8, 8), mode="trilinear", align_corners=True)
        one_hot = F.one_hot(labels, 3).permute(0, 4, 1, 2, 3).double()
        expected = expected + reference_weighted_ce(probs, one_hot) + reference_dice(probs, one_hot)
    torch.testing.assert_close(deep_supervision_loss(logits, labels), expected)


def test_reconstruction_loss_hand_value():
    images = torch.zeros(2, 3, 2, 2, 2)
    reconstructions = images.clone()
    reconstructions[:, 0] = 1.0  # modality 0 off by 1 everywhere, in both samples
    reconstructions[0, 2] = -2.0  # modality 2 off by 2 in sample 0 only: mean 1
    assert reconstruction_loss(reconstructions, images).item() == pytest.approx(2.0)


def test_losses_run_in_float32_under_bf16_autocast():
    logits = random_maps(2, 4, 4, 4, 4, dtype=torch.float32).to(torch.bfloat16)
    labels = torch.randint(0, 4, (2, 4, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = dice_loss(logits, labels) + anatomical_contrastive_loss(random_maps(2, 2, 3, 4, 4, 4).bfloat16(), 10.0)
    assert loss.dtype == torch.float32


# --------------------------------------------------------------------------------------------------------------------
# Total loss (eq. 9)


def fake_output(with_disentanglement: bool = True) -> TrainOutput:
    b, m, k, s = 2, 3, 4, (4, 4, 4)
    out = TrainOutput(
        fused_logits=random_maps(b, k, *s, seed=11),
        deep_supervision_logits=[random_maps(b, k, *s, seed=12), random_maps(b, k, 2, 2, 2, seed=13)],
        modality_logits=random_maps(b, m, k, *s, seed=14),
    )
    if with_disentanglement:
        out.anatomy = random_maps(b, m, 5, 2, 2, 2, seed=15)
        out.modality_vectors = random_maps(b, m, 8, seed=16)
        out.reconstructions = random_maps(b, m, *s, seed=17)
        out.anatomy_temperature = torch.tensor(10.0, dtype=torch.float64)
        out.modality_temperature = torch.tensor(5.0, dtype=torch.float64)
    return out


def test_total_loss_composition_and_switches():
    out, images = fake_output(), random_maps(2, 3, 4, 4, 4, seed=18)
    labels = torch.randint(0, 4, (2, 4, 4, 4), generator=torch.Generator().manual_seed(19))
    loss, parts = total_loss(out, labels, images, alpha=0.4, fuse_weight=0.5)
    expected = (0.5 * parts["fuse"] + parts["deep_supervision"] + parts["reg"]
                + 0.4 * (parts["ana"] + parts["mod"] + parts["rec"]))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(parts["mod"], modality_contrastive_loss(out.modality_vectors, 5.0))
    for variant, terms in ABLATIONS.items():
        _, parts = total_loss(out, labels, images, terms=terms)
        off = {n for n in ("ana", "mod", "rec", "reg") if not getattr(terms, n)}
        assert off.isdisjoint(parts), variant
    assert set(ABLATIONS) == {"full", "no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg"}


def test_total_loss_refuses_terms_without_inputs():
    labels = torch.randint(0, 4, (2, 4, 4, 4))
    baseline = fake_output(with_disentanglement=False)
    _, parts = total_loss(baseline, labels)
    assert set(parts) == {"fuse", "deep_supervision", "reg", "total"}
    with pytest.raises(ValueError):
        total_loss(baseline, labels, terms=LossTerms())
    with pytest.raises(ValueError, match="images"):
        total_loss(fake_output(), labels)
