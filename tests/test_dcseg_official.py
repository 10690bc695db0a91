"""DC-Seg's official implementation (``implementation="official"``) against golden fixtures made by the official code.

``tests/data/golden/dcseg_official.npz`` was produced by the authors' code itself (``docs/reference.md`` §Official
names the copy, the commit, the functions and how): there as here, every parameter is filled from one formula
(``fill``), so the file holds inputs and outputs only, and the large inputs are formulas too (``wave``). Parameters
are filled in the official modules' ``parameters()`` order; ``official_order`` lists ours in that order.

Also here: the paper-width parameter counts of both implementations, one training step of each at a tiny size, and
the official loss terms of every ablation variant.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcseg.experiments import VARIANTS
from dcseg.losses import ABLATIONS, adain_kl_loss, anatomical_contrastive_loss, pairwise_windowed_ssim, total_loss
from dcseg.models import count_parameters, official
from dcseg.models.dcseg import ablation_overrides
from dcseg.registry import build_model

from .conftest import load_golden

TINY_BASE = 4  # the fixture's official model: RFNet part at base 4, E_mod 8/16/32/32/32 -> 32, D_rec at 32
MODEL_SIZE = 48  # the official SSIM pads the deepest maps (size / 8) by 5 voxels of reflection
MODALITY_NAMES = ("flair", "t1ce", "t1", "t2")  # the official attribute prefixes, in channel order
CLOSE = dict(rtol=1e-5, atol=1e-6)  # float32 fixtures
EXACT = dict(rtol=1e-9, atol=1e-12)  # float64 fixtures (E_mod, D_rec): the same function, not just close


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("dcseg_official")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: oneDNN stays on (the 5^3/7^3/11^3 convolutions run about ten times faster with it)."""


def fill_values(k: int, shape: torch.Size) -> torch.Tensor:
    """Parameter number k of a module: s sin(0.37 i + k) over the flat index i, s = 1/sqrt(fan_in) (0.1 for vectors),
    in float64 (``copy_`` casts it to the parameter's dtype, as the generation script does)."""
    i = torch.arange(shape.numel(), dtype=torch.float64)
    scale = (shape.numel() / shape[0]) ** -0.5 if len(shape) > 1 else 0.1
    return (scale * torch.sin(0.37 * i + k)).reshape(shape)


def fill(parameters) -> None:
    with torch.no_grad():
        for k, p in enumerate(parameters):
            p.copy_(fill_values(k, p.shape))


def wave(shape, a: float, b: float, dtype=torch.float32) -> torch.Tensor:
    """The script's smooth deterministic inputs: sin(a i) + 0.5 cos(b i) over the flat index i."""
    i = torch.arange(int(np.prod(shape)), dtype=torch.float64)
    return (torch.sin(a * i) + 0.5 * torch.cos(b * i)).reshape(shape).to(dtype)


def nested_balls(batch: int, size: int) -> torch.Tensor:
    """Labels: class 3 within radius 5, 1 within 10, 2 within 16, else 0; centres per sample as in the script."""
    grid = torch.arange(size, dtype=torch.float64)
    labels = torch.zeros(batch, size, size, size, dtype=torch.long)
    for b in range(batch):
        cx, cy, cz = 20.0 + 4 * b, 24.0 - 3 * b, 22.0 + 2 * b
        r = ((grid[:, None, None] - cx) ** 2 + (grid[None, :, None] - cy) ** 2 + (grid[None, None, :] - cz) ** 2).sqrt()
        for radius, label in ((16, 2), (10, 1), (5, 3)):
            labels[b][r <= radius] = label
    return labels


def tensor(golden: dict, key: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(golden[key]))


# --------------------------------------------------------------------------------------------------------------------
# The official parameter order, in terms of our names


def _our_name(name: str) -> str | None:
    """Our parameter name for an official one; None for the two convs our model leaves out."""
    if name.startswith(("content_attn.", "content_share_conv_list.")):
        return None
    rules = [
        (r"(\w+?)_encoder\.e(\d)_c1\.conv", lambda m, j: f"encoders.{j}.downsample.{int(m[2]) - 1}.conv"),
        (r"(\w+?)_encoder\.e(\d)_c2\.conv", lambda m, j: f"encoders.{j}.residual.{int(m[2]) - 1}.first.conv"),
        (r"(\w+?)_encoder\.e(\d)_c3\.conv", lambda m, j: f"encoders.{j}.residual.{int(m[2]) - 1}.second.conv"),
        (r"(\w+?)_style_encoder\.encoder\.(\d)\.conv", lambda m, j: f"modality_encoders.{j}.features.{2 * int(m[2])}"),
        (r"(\w+?)_style_encoder\.final_conv\.conv", lambda m, j: f"modality_encoders.{j}.projection"),
        (r"(\w+?)_decoder\.mlp\.l1", lambda m, j: f"adain_parameter_nets.{j}.hidden.0"),
        (r"(\w+?)_decoder\.mlp\.l2", lambda m, j: f"adain_parameter_nets.{j}.hidden.2"),
        (r"(\w+?)_decoder\.mlp\.l_mu", lambda m, j: f"adain_parameter_nets.{j}.mean"),
        (r"(\w+?)_decoder\.mlp\.l_sigma", lambda m, j: f"adain_parameter_nets.{j}.scale"),
        (r"(\w+?)_decoder\.res_blocks\.(\d)\.(conv\d)\.conv",
         lambda m, j: f"reconstruction_decoders.{j}.blocks.{m[2]}.{m[3]}"),
        (r"(\w+?)_decoder\.decoder_blocks\.(\d)\.1\.conv", lambda m, j: f"reconstruction_decoders.{j}.up_convs.{m[2]}"),
        (r"(\w+?)_decoder\.final_conv\.conv", lambda m, j: f"reconstruction_decoders.{j}.output"),
    ]
    module, _, leaf = name.rpartition(".")
    for pattern, ours in rules:
        match = re.fullmatch(pattern, module)
        if match and match[1] in MODALITY_NAMES:
            return f"{ours(match, MODALITY_NAMES.index(match[1]))}.{leaf}"
    return _our_rfnet_decoder_name(module) + "." + leaf


def _our_rfnet_decoder_name(module: str) -> str:
    """decoder_fuse.* / decoder_sep.*: level L of the official names is our index L - 1 (shallow to deep)."""
    top, _, rest = module.partition(".")
    ours = {"decoder_fuse": "fused_decoder", "decoder_sep": "separate_decoder"}[top]
    unet = f"{ours}.decoder" if top == "decoder_fuse" else ours
    rules = [
        (r"d(\d)_c1\.conv", lambda m: f"{unet}.up_convs.{int(m[1]) - 1}.conv"),
        (r"d(\d)_c2\.conv", lambda m: f"{unet}.merge_convs.{int(m[1]) - 1}.conv"),
        (r"d(\d)_out\.conv", lambda m: f"{unet}.out_convs.{int(m[1]) - 1}.conv"),
        (r"seg_layer", lambda m: f"{unet}.head"),
        (r"RFM(\d)\.modal_fusion\.(\d)\.weight_layer\.(\d)",
         lambda m: f"{ours}.fusions.{int(m[1]) - 1}.weight_nets.{m[2]}.{m[3]}"),
        (r"RFM(\d)\.region_fusion\.fusion_layer\.(\d)\.conv",
         lambda m: f"{ours}.fusions.{int(m[1]) - 1}.region_fusion.{m[2]}.conv"),
        (r"RFM(\d)\.short_cut\.(\d)\.conv", lambda m: f"{ours}.fusions.{int(m[1]) - 1}.shortcut.{m[2]}.conv"),
        (r"prm_generator(\d)\.embedding_layer\.(\d)\.conv",
         lambda m: f"{ours}.probability_maps.{int(m[1]) - 1}.embedding.{m[2]}.conv"),
        (r"prm_generator(\d)\.prm_layer\.0\.conv", lambda m: f"{ours}.probability_maps.{int(m[1]) - 1}.head.0.conv"),
        (r"prm_generator(\d)\.prm_layer\.1", lambda m: f"{ours}.probability_maps.{int(m[1]) - 1}.head.1"),
    ]
    for pattern, name in rules:
        match = re.fullmatch(pattern, rest)
        if match:
            return name(match)
    raise KeyError(f"no rule for official parameter {module!r}")


def fill_in_official_order(model: torch.nn.Module, official_names) -> None:
    """Parameter k of the official model's order gets ``fill_values(k, ...)``. Two layout differences: RFM's weight
    nets are 1^3 convs there (ours Linear: the same numbers, reshaped), and the official D_sep concatenates [decoder,
    skip] where ours takes [skip, decoder], so its merge convs' input channel halves swap."""
    ours = dict(model.named_parameters())
    filled = set()
    with torch.no_grad():
        for k, name in enumerate(official_names):
            target = _our_name(str(name))
            if target is None:
                continue
            p = ours[target]
            values = fill_values(k, p.shape)
            if re.fullmatch(r"separate_decoder\.merge_convs\.\d\.conv\.weight", target):
                values = torch.cat(values.chunk(2, dim=1)[::-1], dim=1)
            p.copy_(values)
            filled.add(target)
    assert filled == set(ours), f"parameters the official order does not reach: {sorted(set(ours) - filled)}"


# --------------------------------------------------------------------------------------------------------------------
# Golden fixtures


def test_windowed_ssim_and_anatomical_loss_match_the_official_code(golden):
    features = tensor(golden, "ssim_features").requires_grad_(True)  # [N=2, M=4, C, 6, 7, 8]
    similarity = pairwise_windowed_ssim(features.flatten(0, 1))
    torch.testing.assert_close(similarity, tensor(golden, "ssim_similarity"), **CLOSE)
    loss = anatomical_contrastive_loss(features, official.TEMPERATURE, windowed=True)
    torch.testing.assert_close(loss, tensor(golden, "ssim_loss"), **CLOSE)
    (grad,) = torch.autograd.grad(loss, features)  # the data range R is differentiable in the official code too
    torch.testing.assert_close(grad, tensor(golden, "ssim_grad"), rtol=1e-4, atol=1e-7)


def test_windowed_ssim_refuses_maps_too_small_for_its_padding():
    with pytest.raises(ValueError, match="at least 48"):
        pairwise_windowed_ssim(torch.randn(4, 2, 5, 6, 6))


def test_kl_term_matches_the_official_code(golden):
    value = adain_kl_loss(tensor(golden, "kl_means"), tensor(golden, "kl_scales"))
    torch.testing.assert_close(value, tensor(golden, "kl_value"), **CLOSE)


def test_modality_encoder_matches_the_official_style_encoder(golden):
    encoder = official.modality_encoder(official.official_widths(TINY_BASE)).double()
    shapes = [list(p.shape) + [0] * (5 - p.dim()) for p in encoder.parameters()]
    assert shapes == golden["style_shapes"].tolist()
    fill(encoder.parameters())
    image = wave((2, 1, 16, 16, 16), 0.031, 0.0017, torch.float64)
    torch.testing.assert_close(image.sum(), tensor(golden, "style_input_sum"))
    with torch.no_grad():
        code = encoder(image)
    torch.testing.assert_close(code, tensor(golden, "style_code"), **EXACT)


def test_reconstruction_decoder_matches_the_official_image_decoder(golden):
    width = official.official_widths(TINY_BASE).code
    adain = official.AdaINParameterNet(width, width).double()
    decoder = official.OfficialReconstructionDecoder(width).double()
    fill([*adain.parameters(), *decoder.parameters()])  # the official Image_decoder holds its MLP first
    with torch.no_grad():
        mean, scale = adain(tensor(golden, "decoder_code"))
        image = decoder(tensor(golden, "decoder_content"), mean, scale)
    torch.testing.assert_close(mean, tensor(golden, "decoder_means"), **EXACT)
    torch.testing.assert_close(scale, tensor(golden, "decoder_scales"), **EXACT)
    torch.testing.assert_close(image, tensor(golden, "decoder_output"), **EXACT)


def test_loss_of_the_whole_official_model_matches_the_official_training_loss(golden):
    x, labels = wave((2, 4, MODEL_SIZE, MODEL_SIZE, MODEL_SIZE), 0.0123, 0.00071), nested_balls(2, MODEL_SIZE)
    torch.testing.assert_close(x.double().sum(), tensor(golden, "model_input_sum"))
    assert torch.bincount(labels.flatten(), minlength=4).tolist() == golden["model_label_counts"].tolist()
    model = build_model("dcseg", base_channels=TINY_BASE, implementation="official")
    fill_in_official_order(model, golden["model_parameter_names"])
    model.train()
    with torch.no_grad():
        _, parts = total_loss(model(x, tensor(golden, "model_mask")), labels, x)  # alpha 0.4, after the warm-up
    print({name: round(float(value), 6) for name, value in parts.items()})
    for name in ("fuse", "deep_supervision", "reg", "ana", "mod", "rec", "kl", "total"):
        torch.testing.assert_close(parts[name], tensor(golden, f"model_{name}").float(), rtol=2e-5, atol=1e-6,
                                   msg=lambda m: f"{name}: {m}")


# --------------------------------------------------------------------------------------------------------------------
# Parameter counts, training, ablations


def meta_count(**options) -> int:
    with torch.device("meta"):
        return count_parameters(build_model("dcseg", **options))


def test_paper_width_parameter_counts(golden):
    counts = {
        "equations": meta_count(),
        "official": meta_count(implementation="official"),
        "official, keep_unused_parameters": meta_count(implementation="official", keep_unused_parameters=True),
    }
    print(counts)
    assert counts["equations"] == 14_009_446
    # the official total, 40,043,200 (also counted by the generation script on the official classes), includes the
    # 120,832 parameters of two convs that only its unused "gated" fusion calls
    assert counts["official, keep_unused_parameters"] == int(golden["count_total"]) == 40_043_200
    assert counts["official"] == 40_043_200 - int(golden["count_unused"]) == 39_922_368
    with torch.device("meta"):
        equations, official_model = build_model("dcseg"), build_model("dcseg", implementation="official")
        rfnet = build_model("rfnet")
    assert count_parameters(official_model.modality_encoders[0]) == int(golden["count_style_encoder"]) == 2_779_872
    decoder = count_parameters(official_model.adain_parameter_nets[0]) + count_parameters(
        official_model.reconstruction_decoders[0])
    assert decoder == int(golden["count_image_decoder"]) == 4_954_480
    for a, b in ((official_model, equations), (official_model, rfnet)):  # the inference path: the same modules
        for part in ("encoders", "fused_decoder"):
            assert {k: v.shape for k, v in getattr(a, part).state_dict().items()} == {
                k: v.shape for k, v in getattr(b, part).state_dict().items()}
    assert not list(official_model.no_weight_decay_parameters())  # the official temperature is a constant


def test_both_implementations_build_at_both_widths():
    for implementation in ("equations", "official"):
        assert meta_count(width="cpu", implementation=implementation) < meta_count(implementation=implementation)
    with torch.device("meta"):
        cpu = build_model("dcseg", width="cpu", implementation="official")
    assert cpu.modality_encoders[0].projection.out_channels == 64  # base 8 halves the official 128


@pytest.mark.parametrize("implementation, base, size", [("equations", 4, 16), ("official", 2, MODEL_SIZE)])
def test_both_implementations_train_one_step(implementation, base, size):
    torch.manual_seed(0)
    model = build_model("dcseg", base_channels=base, implementation=implementation,
                        modality_encoder_widths=(4, 4, 8, 8, 8))  # the equations' E_mod; "official" has its own
    model.train()
    x = torch.randn(2, 4, size, size, size, generator=torch.Generator().manual_seed(1))
    labels = nested_balls(2, size) if size >= 37 else torch.randint(0, 4, (2, size, size, size))
    mask = torch.tensor([[True, False, True, True], [False, False, False, True]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    loss, parts = total_loss(model(x, mask), labels, x)
    assert torch.isfinite(loss)
    assert ("kl" in parts) == (implementation == "official")
    optimiser.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimiser.step()
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def official_output(seed: int = 0) -> official.OfficialTrainOutput:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return official.OfficialTrainOutput(
        fused_logits=rand(2, 4, 8, 8, 8), deep_supervision_logits=[rand(2, 4, 8, 8, 8)],
        modality_logits=rand(2, 4, 4, 8, 8, 8), anatomy=rand(2, 4, 3, 6, 6, 6), modality_vectors=rand(2, 4, 16),
        reconstructions=rand(2, 4, 8, 8, 8), anatomy_temperature=torch.tensor(official.TEMPERATURE),
        modality_temperature=torch.tensor(official.TEMPERATURE), adain_means=rand(2, 4, 8),
        adain_scales=rand(2, 4, 8) + 2)


def test_official_loss_terms_of_every_ablation_variant():
    out, images = official_output(), torch.randn(2, 4, 8, 8, 8)
    labels = torch.randint(0, 4, (2, 8, 8, 8), generator=torch.Generator().manual_seed(3))
    loss, parts = total_loss(out, labels, images, alpha=0.4)
    expected = (parts["fuse"] + parts["deep_supervision"] + parts["reg"]
                + 0.4 * (parts["ana"] + parts["mod"] + parts["rec"]) + 0.1 * parts["kl"])
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(parts["rec"], F.mse_loss(out.reconstructions, images))
    for variant, terms in ABLATIONS.items():
        _, parts = total_loss(out, labels, images, terms=terms)
        assert "kl" in parts, variant  # the official training adds it in every run, no_rec included
        assert VARIANTS[variant].isdisjoint(parts), variant
    with torch.device("meta"):
        no_rec = build_model("dcseg", implementation="official", **ablation_overrides("no_rec"))
    assert no_rec.reconstruction_decoders is None and no_rec.adain_parameter_nets is not None


def test_implementation_options_are_checked():
    with pytest.raises(ValueError, match="implementation"):
        build_model("dcseg", implementation="paper")
    with pytest.raises(ValueError, match="official"):
        build_model("dcseg", keep_unused_parameters=True)
