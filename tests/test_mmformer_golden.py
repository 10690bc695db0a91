"""mmFormer (``baselines/mmformer.py``) against a golden fixture made by the reference code itself.

``tests/data/golden/mmformer.npz`` was produced by YaoZhang93/mmFormer's own ``Model`` (``docs/reference.md``
§mmFormer names the commit, the functions and the edits): its size constants shrunk (base 4, transformer width 32,
MLP 64, 2 heads, depth 1, a 2^3 token grid, so 32^3 inputs), every parameter filled from one formula (``fill_values``)
in the reference's ``named_parameters()`` order, formula inputs (``wave``), all in float64. The file holds the masks,
the reference's parameter names and what the reference returns (softmax probabilities) at 7^3 of the 32^3 voxels of
every map, with the per-class sums and cosine-weighted sums over all voxels; ``RULES`` maps the names to ours.
Float64 because this tiny filled network amplifies rounding: in float32 the reference departs from its own float64
output by up to 5e-4 (probabilities), ours likewise; in float64 the two agree to about 1e-12.

Compared here: the eval-mode output of our default (the published network: zero padding as on PyTorch 1.2, Q1, and
the raw inter-modal reshape, Q2) for three masks; with ``padding_mode="reflect"`` against the reference run as written
on a current PyTorch; the train-mode outputs (D_sep per modality, deep supervision); that the Q2 fix is not the
published function; and the paper-width parameter counts.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dcseg.models import count_parameters
from dcseg.models.blocks import upsample
from dcseg.registry import build_model

from .conftest import load_golden

TINY = dict(base_channels=4, transformer_dim=32, mlp_dim=64, heads=2, depth=1, crop_size=32)  # the fixture's size
SIZE = 32
MODALITY_NAMES = ("flair", "t1ce", "t1", "t2")  # the reference's attribute prefixes, in channel order
EXACT = dict(rtol=1e-9, atol=1e-12)  # float64 on both sides: the same function, not just close


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("mmformer")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: oneDNN stays on (the 5^3/7^3/11^3 convolutions run about ten times faster with it)."""


def fill_values(k: int, shape: torch.Size, reference_name: str) -> torch.Tensor:
    """Parameter number k of the reference's order: s sin(0.37 i + k) over the flat index i, s = 1/sqrt(fan_in) for
    tensors (fan_in = numel / shape[0]), 0.1 for vectors; LayerNorm weights 1 + 0.1 sin(...). Float64."""
    i = torch.arange(shape.numel(), dtype=torch.float64)
    values = torch.sin(0.37 * i + k)
    if len(shape) > 1:
        return (values * (shape.numel() / shape[0]) ** -0.5).reshape(shape)
    return 1 + 0.1 * values if reference_name.endswith("norm.weight") else 0.1 * values


def wave(shape, a: float, b: float) -> torch.Tensor:
    """The script's inputs: sin(a i) + 0.5 cos(b i) over the flat index i, float64."""
    i = torch.arange(int(np.prod(shape)), dtype=torch.float64)
    return (torch.sin(a * i) + 0.5 * torch.cos(b * i)).reshape(shape)


def golden_input(golden: dict) -> torch.Tensor:
    x = wave((3, 4, SIZE, SIZE, SIZE), 0.031, 0.0017)
    assert float(x.sum()) == pytest.approx(float(golden["input_sum"]), rel=1e-12)
    np.testing.assert_allclose(x.flatten()[:16].numpy(), golden["input_head"], rtol=1e-12)
    return x


# --------------------------------------------------------------------------------------------------------------------
# The reference's parameter order, in terms of our names

MOD = r"(?P<m>flair|t1ce|t1|t2)"
RULES = [  # reference module (or parameter) -> ours; L: the reference's level, 1 = shallowest (our index L - 1)
    (rf"{MOD}_pos", "position_embeddings.{m}"),
    (rf"{MOD}_encoder\.e1_c1", "encoders.{m}.downsample.0"),  # the plain-conv stem
    (rf"{MOD}_encoder\.e(?P<L>\d)_c1\.conv", "encoders.{m}.downsample.{L}.conv"),
    (rf"{MOD}_encoder\.e(?P<L>\d)_c2\.conv", "encoders.{m}.residual.{L}.first.conv"),
    (rf"{MOD}_encoder\.e(?P<L>\d)_c3\.conv", "encoders.{m}.residual.{L}.second.conv"),
    (rf"{MOD}_encode_conv", "token_projections.{m}"),
    (rf"{MOD}_decode_conv", "unused_decode_convs.{m}"),  # Q3: never called
    (r"multimodal_decode_conv", "inter_projection"),
    (rf"(?P<t>{MOD}|multimodal)_transformer\.cross_attention_list\.(?P<d>\d+)\.fn\.norm", "{t}.layers.{d}.attn_norm"),
    (rf"(?P<t>{MOD}|multimodal)_transformer\.cross_attention_list\.(?P<d>\d+)\.fn\.fn\.(?P<x>qkv|proj)",
     "{t}.layers.{d}.attn.{x}"),
    (rf"(?P<t>{MOD}|multimodal)_transformer\.cross_ffn_list\.(?P<d>\d+)\.fn\.norm", "{t}.layers.{d}.ffn_norm"),
    (rf"(?P<t>{MOD}|multimodal)_transformer\.cross_ffn_list\.(?P<d>\d+)\.fn\.fn\.net\.(?P<x>\d)",
     "{t}.layers.{d}.ffn.{x}"),
    (r"decoder_(?P<u>fuse|sep)\.d(?P<L>\d)_c1\.conv", "{u}.up_convs.{L}.conv"),
    (r"decoder_(?P<u>fuse|sep)\.d(?P<L>\d)_c2\.conv", "{u}.merge_convs.{L}.conv"),
    (r"decoder_(?P<u>fuse|sep)\.d(?P<L>\d)_out\.conv", "{u}.out_convs.{L}.conv"),
    (r"decoder_(?P<u>fuse|sep)\.seg_layer", "{u}.head"),
    (r"decoder_fuse\.seg_d(?P<L>\d)", "fused_decoder.deep_heads.{L}"),  # seg_d1 on level 2 ... seg_d4 on level 5
    (r"decoder_fuse\.RFM(?P<L>\d)\.fusion_layer\.(?P<x>\d)\.conv", "fused_decoder.fusions.{L}.{x}.conv"),
]


def _our_name(name: str, keep_unused: bool) -> str | None:
    """Our parameter name for a reference one; None for the unused ``*_decode_conv`` convs (Q3) unless kept."""
    module, leaf = (name, "") if name.endswith("_pos") else name.rsplit(".", 1)
    for pattern, ours in RULES:
        match = re.fullmatch(pattern, module)
        if match is None:
            continue
        if "unused" in ours and not keep_unused:
            return None
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        if "m" in groups:
            groups["m"] = MODALITY_NAMES.index(groups["m"])
        if "L" in groups:
            groups["L"] = int(groups["L"]) - 1
        if "t" in groups:
            groups["t"] = "inter_transformer" if groups["t"] == "multimodal" else f"intra_transformers.{groups['m']}"
        if "u" in groups:
            groups["u"] = {"fuse": "fused_decoder.decoder", "sep": "separate_decoder"}[groups["u"]]
        return ours.format(**groups) + (f".{leaf}" if leaf else "")
    raise KeyError(f"no rule for reference parameter {name!r}")


def reference_names(golden: dict) -> list[str]:
    return [n.decode() for n in golden["parameter_names"]]


def fill_in_reference_order(model: torch.nn.Module, names: list[str], keep_unused: bool = False) -> None:
    """Parameter k of the reference's order gets ``fill_values(k, ...)``. One layout difference: the reference's
    Decoder_sep concatenates [decoder, skip] where ours takes [skip, decoder], so its merge convs' input channel
    halves swap (its Decoder_fuse concatenates [skip, decoder], as ours)."""
    ours = dict(model.named_parameters())
    filled = set()
    with torch.no_grad():
        for k, name in enumerate(names):
            target = _our_name(name, keep_unused)
            if target is None:
                continue
            p = ours[target]
            values = fill_values(k, p.shape, name)
            if re.fullmatch(r"separate_decoder\.merge_convs\.\d\.conv\.weight", target):
                values = torch.cat(values.chunk(2, dim=1)[::-1], dim=1)
            p.copy_(values)
            filled.add(target)
    assert filled == set(ours), f"parameters the reference order does not reach: {sorted(set(ours) - filled)}"


def tiny_model(golden: dict, **options) -> torch.nn.Module:
    model = build_model("mmformer", **{**TINY, **options}).double()
    fill_in_reference_order(model, reference_names(golden), options.get("keep_unused_parameters", False))
    return model


def kept_voxels(golden: dict, maps: torch.Tensor) -> torch.Tensor:
    index = torch.from_numpy(golden["voxel_index"])
    return maps[..., index, :, :][..., index, :][..., index]


def check_summary(golden: dict, key: str, prob: torch.Tensor) -> float:
    """prob ``[..., X, Y, Z]`` against ``{key}prob`` (the kept voxels), ``{key}sum`` and ``{key}wsum`` (sums over all
    voxels, plain and weighted by cos(0.05 i) over the flat voxel index i); returns the largest voxel difference."""
    weights = torch.cos(0.05 * torch.arange(SIZE ** 3, dtype=torch.float64)).reshape((SIZE,) * 3)
    expected = {part: torch.from_numpy(golden[f"{key}{part}"]) for part in ("prob", "sum", "wsum")}
    kept = kept_voxels(golden, prob)
    torch.testing.assert_close(kept, expected["prob"], **EXACT)
    torch.testing.assert_close(prob.sum(dim=(-3, -2, -1)), expected["sum"], **EXACT)
    torch.testing.assert_close((prob * weights).sum(dim=(-3, -2, -1)), expected["wsum"], **EXACT)
    return float((kept - expected["prob"]).abs().max())


def eval_probabilities(model: torch.nn.Module, golden: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(golden_input(golden), torch.from_numpy(golden["mask"])).softmax(dim=1)


# --------------------------------------------------------------------------------------------------------------------
# Golden comparisons


@pytest.mark.parametrize("keep_unused", [False, True])
def test_reference_order_reaches_every_parameter_once_with_its_shape(golden, keep_unused):
    with torch.device("meta"):
        ours = dict(build_model("mmformer", **TINY, keep_unused_parameters=keep_unused).named_parameters())
    reached = {}
    for name, shape in zip(reference_names(golden), golden["parameter_shapes"]):
        target = _our_name(name, keep_unused)
        if target is not None:
            assert target not in reached, f"{name} and another reference parameter both map to {target}"
            reached[target] = tuple(int(s) for s in shape if s)
    assert reached == {name: tuple(p.shape) for name, p in ours.items()}
    assert len(reached) == len(golden["parameter_names"]) - (0 if keep_unused else len(MODALITY_NAMES) * 2)


def test_default_forward_matches_the_reference(golden):
    """Our default (zero padding, raw inter-modal reshape) = the reference as the published PyTorch 1.2 ran it, for
    the masks [T, F, T, T], all four and [F, T, F, F] (one batch)."""
    assert golden["mask"].tolist() == [[True, False, True, True], [True, True, True, True],
                                       [False, True, False, False]]
    print("max abs difference", check_summary(golden, "", eval_probabilities(tiny_model(golden), golden)))


def test_reflect_padding_matches_the_reference_as_written(golden):
    """``padding_mode="reflect"`` = the reference run on a PyTorch that honours its ``padding_mode='reflect'``."""
    model = tiny_model(golden, padding_mode="reflect")
    print("max abs difference", check_summary(golden, "reflect_", eval_probabilities(model, golden)))
    assert np.abs(golden["reflect_prob"] - golden["prob"]).max() > 1e-2  # the fixture does see the padding


def test_unused_parameters_do_not_change_the_output(golden):
    check_summary(golden, "", eval_probabilities(tiny_model(golden, keep_unused_parameters=True), golden))


def test_train_outputs_match_the_reference(golden):
    """Train mode, dropout 0 (the script ran the reference with ``is_training=True`` in eval mode: no dropout).
    D_sep per modality and the deep-supervision heads of the first case (mask [T, F, T, T]); the reference returns
    the heads' softmax upsampled to full size (trilinear, corners aligned), ours their logits at native size."""
    model = tiny_model(golden, dropout=0.0).train()
    with torch.no_grad():
        out = model(golden_input(golden), torch.from_numpy(golden["mask"]))
    check_summary(golden, "", out.fused_logits.softmax(dim=1))
    separate = out.modality_logits[:1].softmax(dim=2)  # [1, M, K, X, Y, Z]
    deep = torch.stack([upsample(logits[:1].softmax(dim=1), SIZE // logits.shape[-1])
                        for logits in out.deep_supervision_logits], dim=1)  # [1, levels shallow to deep, K, ...]
    print("max abs difference: D_sep", check_summary(golden, "sep_", separate),
          "deep supervision", check_summary(golden, "deep_", deep))


def test_folding_tokens_per_modality_is_not_the_published_function(golden):
    """The Q2 fix changes the function: its output departs from the reference's."""
    prob = eval_probabilities(tiny_model(golden, fold_tokens_per_modality=True), golden)
    difference = float((kept_voxels(golden, prob) - torch.from_numpy(golden["prob"])).abs().max())
    print("max abs difference of the fix", difference)
    assert difference > 1e-3


# --------------------------------------------------------------------------------------------------------------------
# Parameter counts


def meta_count(**options) -> int:
    with torch.device("meta"):
        return count_parameters(build_model("mmformer", **options))


def test_paper_width_parameter_counts(golden):
    counts = {"default": meta_count(), "keep_unused_parameters": meta_count(keep_unused_parameters=True)}
    print(counts)
    # the reference's Model() at its published constants, counted by the generation script
    assert counts["keep_unused_parameters"] == int(golden["count_total"]) == 36_654_416
    assert counts["default"] == 36_654_416 - int(golden["count_unused"]) == 36_391_760
