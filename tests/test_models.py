"""Models: parameter counts against the references, the masking contract, shapes, gradient routing of every loss term.

Everything runs at tiny widths and inputs of 16-48 voxels per axis; reference-width models are only constructed, on
the meta device. Two settings keep the file fast on a small shared machine, without touching what is tested:
one intra-op thread (tiny tensors gain nothing from more, and OpenMP threads stall when the cores are busy), and,
except in the bf16 test, no oneDNN (its per-shape set-up costs seconds for every new shape at these sizes).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from dcseg.hardware import cpu_bf16_native, cpu_kind
from dcseg.losses import ABLATIONS, LossTerms, deep_supervision_loss, total_loss
from dcseg.losses import anatomical_contrastive_loss, modality_contrastive_loss, reconstruction_loss
from dcseg.losses import regulariser_loss, segmentation_loss
from dcseg.models import MODEL_NAMES, TrainOutput, count_parameters
from dcseg.registry import build_model
from dcseg.models.dcseg import ablation_overrides

TINY = {
    "rfnet": dict(base_channels=4),
    "dcseg": dict(base_channels=4, modality_encoder_widths=(4, 4, 8, 8, 8)),
    "mmformer": dict(base_channels=4, transformer_dim=16, mlp_dim=32, heads=2),
}
SIZE = {"rfnet": (16, 16, 16), "dcseg": (16, 16, 16), "mmformer": (16, 16, 32)}  # > 1 voxel at the deepest level
MIXED_MASK = torch.tensor([[True, False, True, True], [False, False, False, True]])


@contextmanager
def onednn(enabled: bool):
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


@pytest.fixture(autouse=True)
def small_cpu_settings():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with onednn(False):
            yield
    finally:
        torch.set_num_threads(threads)


def tiny_model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {**TINY[name], **overrides}
    if name == "mmformer":
        options.setdefault("crop_size", SIZE[name])
    return build_model(name, **options)


def tiny_input(name: str, batch: int = 2, size: tuple[int, int, int] | None = None, modalities: int = 4,
               dtype=torch.float32) -> torch.Tensor:
    size = size or SIZE[name]
    return torch.randn(batch, modalities, *size, generator=torch.Generator().manual_seed(1), dtype=dtype)


def meta_count(name: str, **overrides) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(name, **overrides))


# --------------------------------------------------------------------------------------------------------------------
# Parameter counts


def test_reference_parameter_counts():
    assert meta_count("rfnet") == 8_984_960
    assert meta_count("rfnet", num_classes=5) == 9_132_790  # the reference's BraTS2015 configuration
    assert meta_count("mmformer") == 36_391_760  # reference 36,654,416 minus 262,656 never-used parameters
    assert meta_count("mmformer", keep_unused_parameters=True) == 36_654_416
    assert meta_count("dcseg") == 14_009_446  # spec 9.2: RFNet + E_mod + D_rec + 2 temperatures
    assert meta_count("dcseg", modality_encoder_widths=(8, 16, 32, 32, 32)) == 11_932_582


def test_reference_part_counts():
    with torch.device("meta"):
        rfnet, mmformer = build_model("rfnet"), build_model("mmformer")
    assert count_parameters(rfnet.encoders[0]) == 1_466_496
    assert count_parameters(rfnet.fused_decoder) == 2_532_588
    assert count_parameters(rfnet.separate_decoder) == 586_388
    assert [count_parameters(f) for f in rfnet.fused_decoder.fusions] == [52_064, 133_296, 392_528, 1_298_064]
    assert [count_parameters(p) for p in rfnet.fused_decoder.probability_maps] == [1_372, 4_164, 14_260, 50_452]
    assert count_parameters(mmformer.encoders[0]) == 1_473_216
    assert count_parameters(mmformer.intra_transformers[0]) == 5_250_048
    assert count_parameters(mmformer.inter_projection) == 1_049_088
    assert count_parameters(mmformer.fused_decoder) == 1_293_444
    assert count_parameters(mmformer.separate_decoder) == 593_356


def test_cpu_profile_is_narrower_and_inference_matches_rfnet():
    for name in MODEL_NAMES:
        assert meta_count(name, width="cpu") < meta_count(name)
    with torch.device("meta"):
        dcseg, rfnet = build_model("dcseg"), build_model("rfnet")
    inference = sum(count_parameters(m) for m in (dcseg.encoders, dcseg.fused_decoder))
    assert inference == count_parameters(rfnet) - count_parameters(rfnet.separate_decoder)


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(KeyError):
        build_model("unet")
    with pytest.raises(KeyError):
        build_model("rfnet", width="gpu")
    with pytest.raises(TypeError):
        build_model("rfnet", transformer_dim=3)
    with torch.device("meta"):
        build_model("rfnet", crop_size=64)  # accepted by every model, used by mmFormer only


# --------------------------------------------------------------------------------------------------------------------
# The masking contract


@pytest.mark.parametrize("name,overrides", [
    ("rfnet", {}), ("dcseg", {}), ("mmformer", {}), ("mmformer", {"fold_tokens_per_modality": True}),
])
def test_eval_output_ignores_masked_out_inputs(name, overrides):
    model = tiny_model(name, **overrides).double().eval()
    x = tiny_input(name, dtype=torch.float64)
    changed = x.clone()
    changed[0, 1] = 5 * torch.randn_like(x[0, 1])  # masked out in sample 0
    changed[1, :3] = 7.0  # masked out in sample 1
    available = x.clone()
    available[0, 0] += 1.0  # an available modality: the output must change
    with torch.no_grad():
        reference, after, control = model(x, MIXED_MASK), model(changed, MIXED_MASK), model(available, MIXED_MASK)
    torch.testing.assert_close(after, reference, atol=1e-5, rtol=0)
    assert (control[0] - reference[0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_output_of_a_sample_ignores_the_rest_of_the_batch(name):
    model = tiny_model(name).double().eval()
    x = tiny_input(name, batch=3, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True], [False, False, False, True], [True, True, True, True]])
    with torch.no_grad():
        together = model(x, mask)
        alone = torch.cat([model(x[b:b + 1], mask[b:b + 1]) for b in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encode_once_decode_per_mask_equals_forward(name):
    model = tiny_model(name).eval()
    x = tiny_input(name, batch=1)
    masks = torch.tensor([[True, True, True, True], [False, True, False, False], [True, False, False, True]])
    with torch.no_grad():
        features = model.encode(x)
        separate = [model(x, mask[None]) for mask in masks]
        for mask, expected in zip(masks, separate):
            torch.testing.assert_close(model.decode(features, mask[None]), expected, atol=1e-6, rtol=0)
        # all masks at once on the features repeated along the batch (as the sliding-window inference does)
        repeated = [f.expand(len(masks), *f.shape[1:]) for f in features]
        torch.testing.assert_close(model.decode(repeated, masks), torch.cat(separate), atol=1e-4, rtol=1e-5)


def test_encoder_of_a_missing_modality_gets_no_fused_gradient_but_a_regulariser_one():
    model = tiny_model("rfnet").train()
    x = tiny_input("rfnet", batch=1)
    labels = torch.randint(0, 4, (1, 16, 16, 16))
    out = model(x, torch.tensor([[True, False, True, True]]))  # modality 1 missing
    encoder = list(model.encoders[1].parameters())
    fused = torch.autograd.grad(segmentation_loss(out.fused_logits, labels), encoder, allow_unused=True,
                                retain_graph=True)
    assert all(g is None or g.abs().max() == 0 for g in fused)
    reg = torch.autograd.grad(regulariser_loss(out.modality_logits, labels), encoder, allow_unused=True)
    assert any(g is not None and g.abs().max() > 0 for g in reg)


# --------------------------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("name,size", [("rfnet", (24, 16, 32)), ("dcseg", (24, 16, 32)), ("mmformer", (32, 16, 48))])
def test_shapes_for_non_cubic_inputs(name, size):
    model = tiny_model(name, crop_size=size) if name == "mmformer" else tiny_model(name)
    x = tiny_input(name, size=size)
    model.eval()
    with torch.no_grad():
        assert model(x, MIXED_MASK).shape == (2, 4, *size)
    model.train()
    out = model(x, MIXED_MASK)
    assert isinstance(out, TrainOutput)
    assert out.fused_logits.shape == (2, 4, *size)
    assert out.modality_logits.shape == (2, 4, 4, *size)
    factors = [1, 2, 4, 8] if name != "mmformer" else [2, 4, 8, 16]
    assert [tuple(t.shape) for t in out.deep_supervision_logits] == [(2, 4, *(s // f for s in size)) for f in factors]
    if name == "dcseg":
        assert out.anatomy.shape == (2, 4, 32, *(s // 8 for s in size))
        assert out.modality_vectors.shape == (2, 4, 8)
        assert out.reconstructions.shape == (2, 4, *size)
        assert out.anatomy_temperature.item() == pytest.approx(10.0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_two_modalities_two_classes(name):
    """The paper's WMH setting: FLAIR and T1, lesion vs background."""
    model = tiny_model(name, num_modalities=2, num_classes=2).train()
    x = tiny_input(name, modalities=2)
    mask = torch.tensor([[True, False], [True, True]])
    labels = torch.randint(0, 2, (2, *x.shape[2:]))
    loss, _ = total_loss(model(x, mask), labels, x)
    loss.backward()
    model.eval()
    with torch.no_grad():
        assert model(x, mask).shape == (2, 2, *x.shape[2:])


def test_input_validation():
    model = tiny_model("mmformer").eval()
    with pytest.raises(ValueError, match="bool"):
        model(tiny_input("mmformer"), MIXED_MASK.int())
    with pytest.raises(ValueError, match="crop"):
        model(tiny_input("mmformer", size=(16, 16, 48)), MIXED_MASK)  # the token grid follows the build crop
    with pytest.raises(ValueError, match="divisible"):
        tiny_model("rfnet")(tiny_input("rfnet", size=(16, 16, 20)), MIXED_MASK)


def test_mmformer_inter_reshape_option_changes_the_function():
    faithful = tiny_model("mmformer").eval()  # the published raw reshape (Q2) is the default
    fixed = tiny_model("mmformer", fold_tokens_per_modality=True).eval()
    fixed.load_state_dict(faithful.state_dict())
    x = tiny_input("mmformer")
    with torch.no_grad():
        assert (fixed(x, MIXED_MASK) - faithful(x, MIXED_MASK)).abs().max() > 1e-4


# --------------------------------------------------------------------------------------------------------------------
# Precision and memory format


def _channels_last_model(name):
    # PyTorch 2.13's oneDNN bf16 conv3d weight gradient is wrong for maps exactly 2 voxels deep along X, so every map
    # here has >= 3 voxels per axis (so do the CPU profile's 64^3 and the paper's crops)
    size = (48, 48, 48) if name == "mmformer" else (32, 32, 32)
    model = tiny_model(name, crop_size=size).eval() if name == "mmformer" else tiny_model(name).eval()
    x = tiny_input(name, size=size)
    return model.to(memory_format=torch.channels_last_3d), x, x.contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("name", MODEL_NAMES)
@onednn(True)
def test_channels_last_gives_the_contiguous_output(name):
    model, x, x_cl = _channels_last_model(name)
    with torch.no_grad():
        plain = model.to(memory_format=torch.contiguous_format)(x, MIXED_MASK)
        model = model.to(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(model(x_cl, MIXED_MASK), plain, atol=1e-3, rtol=1e-3)  # summation order


# Emulated bf16 (a CPU without AVX-512-BF16 or AMX) runs these convolutions 10-25x slower than fp32: minutes, not
# seconds, so the test runs only where bf16 is native; dcseg.hardware never picks bf16 elsewhere.
@pytest.mark.skipif(not cpu_bf16_native(), reason=f"no native bf16 on this CPU ({cpu_kind()}): emulated bf16 would "
                    "cost minutes, and precision auto never selects it here")
@pytest.mark.parametrize("name", MODEL_NAMES)
@onednn(True)
def test_channels_last_bf16_autocast_training_step(name):
    model, x, x_cl = _channels_last_model(name)
    model.train()
    labels = torch.randint(0, 4, (2, *x.shape[2:]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x_cl, MIXED_MASK)
        loss, parts = total_loss(out, labels, x)
    assert out.fused_logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --------------------------------------------------------------------------------------------------------------------
# Which parameters each loss term trains (DC-Seg)


def parameter_group(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "fused_decoder":
        if parts[1] == "fusions":
            return "deepest_fusion" if parts[2] == "3" else "upper_fusions"
        return {"probability_maps": "probability_maps", "decoder": "fused_unet"}[parts[1]]
    return parts[0]


def reached_groups(loss: torch.Tensor, model: torch.nn.Module) -> set[str]:
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return {parameter_group(n) for n, g in zip(names, grads) if g is not None and g.abs().max() > 0}


def test_each_dcseg_loss_term_trains_exactly_its_parameters():
    model = tiny_model("dcseg").train()
    x = tiny_input("dcseg")
    labels = torch.randint(0, 4, (2, 16, 16, 16), generator=torch.Generator().manual_seed(2))
    out = model(x, torch.ones(2, 4, dtype=torch.bool))
    terms = {
        "fuse": segmentation_loss(out.fused_logits, labels),
        "deep_supervision": deep_supervision_loss(out.deep_supervision_logits, labels),
        "reg": regulariser_loss(out.modality_logits, labels),
        "ana": anatomical_contrastive_loss(out.anatomy, out.anatomy_temperature),
        "mod": modality_contrastive_loss(out.modality_vectors, out.modality_temperature),
        "rec": reconstruction_loss(out.reconstructions, x),
    }
    expected = {
        # the probability maps are detached before fusion (Q11, docs/reference.md §Quirks): the fused loss does not
        # reach their generators
        "fuse": {"encoders", "deepest_fusion", "upper_fusions", "fused_unet"},
        "deep_supervision": {"encoders", "probability_maps", "deepest_fusion", "upper_fusions", "fused_unet"},
        "reg": {"encoders", "separate_decoder"},
        "ana": {"encoders", "log_temperature_anatomy"},
        "mod": {"modality_encoders", "log_temperature_modality"},
        # z is the deepest region-aware fusion of the anatomy; the modality encoders learn from L_mod and L_rec only
        "rec": {"encoders", "deepest_fusion", "modality_encoders", "reconstruction_decoders"},
    }
    for term, loss in terms.items():
        assert reached_groups(loss, model) == expected[term], term


def test_undetached_probability_maps_option_lets_the_fused_loss_train_the_generators():
    model = tiny_model("rfnet", detach_probability_maps=False).train()
    x = tiny_input("rfnet")
    out = model(x, MIXED_MASK)
    labels = torch.randint(0, 4, (2, 16, 16, 16))
    assert "probability_maps" in reached_groups(segmentation_loss(out.fused_logits, labels), model)


@pytest.mark.parametrize("variant", sorted(ABLATIONS))
def test_ablation_variants_are_configuration(variant):
    model = tiny_model("dcseg", **ablation_overrides(variant)).train()
    x = tiny_input("dcseg")
    labels = torch.randint(0, 4, (2, 16, 16, 16))
    loss, parts = total_loss(model(x, MIXED_MASK), labels, x, terms=ABLATIONS[variant])
    terms = ABLATIONS[variant]
    assert set(parts) - {"total"} == {n for n in ("fuse", "deep_supervision", "reg", "ana", "mod", "rec")
                                      if getattr(terms, n)}
    alpha_terms = sum(parts.get(n, 0.0) for n in ("ana", "mod", "rec"))
    expected = parts["fuse"] + parts["deep_supervision"] + parts.get("reg", 0.0) + 0.4 * alpha_terms
    torch.testing.assert_close(loss.detach(), torch.as_tensor(expected, dtype=loss.dtype))
    loss.backward()


def test_baseline_total_loss_has_only_segmentation_terms_and_rejects_dcseg_terms():
    model = tiny_model("rfnet").train()
    x = tiny_input("rfnet")
    labels = torch.randint(0, 4, (2, 16, 16, 16))
    out = model(x, MIXED_MASK)
    warm_up, parts = total_loss(out, labels, fuse_weight=0.0)  # RFNet's first 20 epochs
    assert set(parts) == {"fuse", "deep_supervision", "reg", "total"}
    torch.testing.assert_close(warm_up.detach(), parts["deep_supervision"] + parts["reg"])
    with pytest.raises(ValueError, match="ana"):
        total_loss(out, labels, terms=LossTerms())


def test_instance_norm_block_is_instance_norm():
    from dcseg.models.blocks import instance_norm

    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(instance_norm(3)(x), torch.nn.functional.instance_norm(x))
    assert count_parameters(instance_norm(3)) == 0


def test_dcseg_options():
    with torch.device("meta"):
        assert meta_count("dcseg", learnable_temperature=False) == 14_009_446 - 2
    model = tiny_model("dcseg", reconstruction_source="own_anatomy", anatomy_level=2).train()
    out = model(tiny_input("dcseg"), MIXED_MASK)
    assert out.reconstructions.shape == (2, 4, 16, 16, 16)
    assert out.anatomy.shape == (2, 4, 16, 4, 4, 4)
    with pytest.raises(ValueError):
        tiny_model("dcseg", with_modality_encoder=False)  # D_rec needs E_mod
