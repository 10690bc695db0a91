import math

import pytest
import torch
from torch import nn

from dcseg.inference import InferenceSettings, predict_labels, predict_probabilities, window_starts, window_weights
from dcseg.registry import build_model
from dcseg.subsets import SUBSETS
from dcseg.tasks import BRATS

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread start-up and synchronisation would cost more than the work (much more on a busy
    machine), so these tests run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Tiny networks: the smallest widths that run, patch = one window edge each model accepts.
TINY = {
    "rfnet": ({"base_channels": 2}, 16),
    "dcseg": ({"base_channels": 2}, 16),
    "mmformer": ({"base_channels": 2, "transformer_dim": 8, "mlp_dim": 16, "heads": 1, "crop_size": 32}, 32),
}


def tiny_model(name):
    torch.manual_seed(0)
    options, patch = TINY[name]
    return build_model(name, width="cpu", **options).eval(), patch


class PointwiseModel(nn.Module):
    """logits = the masked input channels (M = K = 4): every voxel's prediction depends on that voxel only, so
    sliding-window averaging must give back exactly softmax(masked image)."""

    divisor = 1

    def encode(self, x):
        return [x[:, :, None]]  # [B, M, 1, X, Y, Z], like the models' per-level modality stacks

    def decode(self, features, mask):
        stack = features[0]
        return torch.where(mask[:, :, None, None, None, None], stack, 0.0)[:, :, 0]

    def forward(self, x, mask):
        return self.decode(self.encode(x), mask)


class ConstantModel(PointwiseModel):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def decode(self, features, mask):
        b, _, _, *size = features[0].shape
        return self.logits[None, :, None, None, None].expand(b, -1, *size).clone()


def reference_starts(size, patch, overlap=0.5):
    """RFNet/mmFormer predict.py, written out literally."""
    count = int(math.ceil((size - patch) / (patch * (1 - overlap))))
    starts = [i * int(patch * (1 - overlap)) for i in range(count)]
    starts.append(size - patch)
    return starts


@pytest.mark.parametrize("patch", [16, 64, 80, 128])
def test_window_starts_match_the_reference_and_cover_the_axis(patch):
    stride = patch // 2
    for size in range(patch, 3 * patch + 7):
        starts = window_starts(size, patch, stride)
        assert starts == reference_starts(size, patch)
        assert starts[0] == 0 and starts[-1] + patch == size
        assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:]))  # no gap, no duplicate
    with pytest.raises(ValueError, match="shorter than the patch"):
        window_starts(patch - 1, patch, stride)


def test_settings_stride_and_validation():
    assert InferenceSettings(patch=80).stride == 40
    assert InferenceSettings(patch=64, overlap=0.75).stride == 16
    for bad in ({"overlap": 1.0}, {"weighting": "cosine"}, {"precision": "fp16"}, {"mode": "both"},
                {"subset_batch": 0}, {"patch": 16.0}):
        with pytest.raises(ValueError):
            InferenceSettings(**{"patch": 16, **bad})


@pytest.mark.parametrize("weighting", ["uniform", "gaussian"])
def test_constant_logits_give_that_constant(weighting):
    logits = [0.5, -1.0, 2.0, 0.0]
    model = ConstantModel(logits).eval()
    image = torch.randn(4, 20, 13, 27)  # axis 1 shorter than the patch: padded, then cropped back
    probs = predict_probabilities(model, image, InferenceSettings(patch=16, weighting=weighting), BRATS.masks[:2])
    expected = torch.softmax(torch.tensor(logits), 0)[None, :, None, None, None].expand(2, 4, 20, 13, 27)
    assert probs.shape == (2, 4, 20, 13, 27)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)


def test_gaussian_weights_peak_in_the_middle_and_stay_positive():
    w = window_weights(16, "gaussian")
    assert w.shape == (16, 16, 16) and w.min() > 0
    assert w[7:9, 7:9, 7:9].min() == w.max() and w.max() <= 1
    assert torch.equal(window_weights(8, "uniform"), torch.ones(8, 8, 8))


@pytest.mark.parametrize("weighting, patch", [("uniform", 8), ("gaussian", 12)])
def test_windows_are_put_back_in_place(weighting, patch):
    # Pointwise model: any misplaced window, wrong weighting or bad crop-back shows up as a difference.
    image = torch.randn(4, 21, 9, 30)  # axis 1 is padded for the 12^3 window
    masks = BRATS.masks[-2:]  # t1ce+t1+t2 (FLAIR masked out) and all four
    probs = predict_probabilities(PointwiseModel().eval(), image, InferenceSettings(patch, weighting=weighting), masks)
    for i, mask in enumerate(masks):
        masked = torch.where(torch.tensor(mask)[:, None, None, None], image, 0.0)
        torch.testing.assert_close(probs[i], torch.softmax(masked, 0), atol=1e-6, rtol=0)


def test_padding_uses_each_channels_background():
    seen = []

    class Spy(PointwiseModel):
        def encode(self, x):
            seen.append(x.clone())
            return super().encode(x)

    image = torch.randn(4, 16, 10, 16)
    predict_probabilities(Spy().eval(), image, InferenceSettings(patch=16), BRATS.masks[-1:])
    (window,) = seen
    assert window.shape == (1, 4, 16, 16, 16)
    background = image.amin(dim=(1, 2, 3))[:, None, None, None].expand(4, 16, 6, 16)
    torch.testing.assert_close(window[0, :, :, 10:], background)
    torch.testing.assert_close(window[0, :, :, :10], image)


@pytest.mark.parametrize("name", ["rfnet", "dcseg", "mmformer"])
def test_shared_features_equal_independent_passes_for_all_subsets(name):
    model, patch = tiny_model(name)
    image = torch.randn(4, patch, patch, patch)
    shared = predict_probabilities(model, image, InferenceSettings(patch=patch), BRATS.masks)
    independent = predict_probabilities(model, image, InferenceSettings(patch=patch, mode="independent"), BRATS.masks)
    assert shared.shape[:2] == (len(SUBSETS), 4)
    torch.testing.assert_close(shared, independent, atol=1e-4, rtol=0)  # batched GEMMs round differently
    top2 = independent.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3  # argmax may differ only at (float-rounding) ties
    assert clear.float().mean() > 0.99
    assert torch.equal(shared.argmax(1)[clear], independent.argmax(1)[clear])


def test_shared_features_in_subset_chunks_over_overlapping_windows():
    model, patch = tiny_model("rfnet")
    image = torch.randn(4, 24, 16, 20)  # 2 x 1 x 2 overlapping windows
    # subset_batch 4: chunks of 4, 4, 4 and 3 subsets share one encoder pass
    shared = predict_probabilities(model, image, InferenceSettings(patch=patch, subset_batch=4), BRATS.masks)
    independent = predict_probabilities(model, image, InferenceSettings(patch=patch, mode="independent"), BRATS.masks)
    torch.testing.assert_close(shared, independent, atol=1e-4, rtol=0)


def test_a_masked_out_channel_does_not_change_the_subset_prediction():
    model, patch = tiny_model("rfnet")
    image = torch.randn(4, patch, patch, patch)
    flair_t1ce = SUBSETS[9]
    assert flair_t1ce.name == "flair+t1ce"
    changed = image.clone()
    changed[2:] = torch.randn(2, patch, patch, patch) * 5  # T1 and T2 are not in the subset
    settings = InferenceSettings(patch=patch)
    before = predict_labels(model, image, settings, [flair_t1ce.mask])
    after = predict_labels(model, changed, settings, [flair_t1ce.mask])
    assert torch.equal(before, after)
    full = [SUBSETS[-1].mask]
    assert not torch.equal(predict_labels(model, image, settings, full), predict_labels(model, changed, settings, full))


def test_bf16_runs_and_stays_close():
    model, patch = tiny_model("rfnet")
    image = torch.randn(4, patch, patch, patch)
    fp32 = predict_probabilities(model, image, InferenceSettings(patch=patch), BRATS.masks[-1:])
    bf16 = predict_probabilities(model, image, InferenceSettings(patch=patch, precision="bf16"), BRATS.masks[-1:])
    assert bf16.dtype == torch.float32  # accumulation stays in float32
    torch.testing.assert_close(bf16.sum(1), torch.ones_like(bf16[:, 0]), atol=1e-5, rtol=0)
    assert (bf16 - fp32).abs().mean() < 0.05


def test_refuses_a_training_model_and_a_patch_the_model_cannot_take():
    model, patch = tiny_model("rfnet")
    with pytest.raises(ValueError, match="divisible by 8"):
        predict_probabilities(model, torch.randn(4, 12, 12, 12), InferenceSettings(patch=12), BRATS.masks)
    mmformer, patch = tiny_model("mmformer")
    with pytest.raises(ValueError, match="patch must match"):
        predict_probabilities(mmformer, torch.randn(4, 48, 48, 48), InferenceSettings(patch=48), BRATS.masks)
    with pytest.raises(ValueError, match="one voxel at the deepest level"):  # 16 / 16: a 1^3 bottleneck
        predict_probabilities(mmformer, torch.randn(4, 16, 16, 16), InferenceSettings(patch=16), BRATS.masks)
    model.train()
    with pytest.raises(ValueError, match="eval"):
        predict_probabilities(model, torch.randn(4, 16, 16, 16), InferenceSettings(patch=16), BRATS.masks)
