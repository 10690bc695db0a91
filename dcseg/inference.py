"""Sliding-window inference of one volume for many modality subsets (``docs/reference.md`` §Inference).

The references slide a P^3 window with stride P/2 over the whole preprocessed volume, once per modality subset,
sum the softmax of every window, divide by the per-voxel window count and take the argmax. Here:

- window starts per axis follow the references exactly: 0, s, 2s, ..., (n-1)s with n = ceil((S-P)/s), plus S-P,
  where s = int(P (1 - overlap)); an axis shorter than the patch is padded at its end with the background value
  (per channel, the minimum of the z-scored image: preprocessing pads raw zeros, which become the channel's lowest
  value) and cropped back afterwards;
- weighting ``uniform`` (the references) or ``gaussian`` (nnU-Net: sigma = P/8 per axis, peak 1);
- mode ``shared``: per window the modality encoders run once (``model.encode``) and ``model.decode`` runs for a
  batch of subsets at once on the features repeated along the batch; every model's decode needs only encode's
  output and the mask (RFNet/DC-Seg: fusion + decoder; mmFormer: the per-modality intra-modal transformers are in
  encode, masking + inter-modal transformer + decoder in decode), and works per sample, so this gives the
  independent result up to float rounding;
- mode ``independent``: one full ``model(window, mask)`` per subset and window, as the references do (for the
  equivalence test and the benchmark);
- precision ``bf16`` runs the network under autocast; softmax and accumulation are always float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import torch
from torch import nn

from dcseg.hardware import RESOLVED_PRECISIONS, autocast, memory_format
from dcseg.models.blocks import input_size_problem

WEIGHTINGS = ("uniform", "gaussian")
MODES = ("shared", "independent")


@dataclass(frozen=True)
class InferenceSettings:
    patch: int  # window edge (voxels), the same on every axis
    overlap: float = 0.5  # fraction of the window shared with the next one; stride = int(patch * (1 - overlap))
    weighting: str = "uniform"
    precision: str = "fp32"
    mode: str = "shared"
    subset_batch: int = 15  # subsets decoded together in shared mode (memory vs speed; results are the same)
    channels_last: bool = False  # feed windows as channels_last_3d (pair with model.to(memory_format=...))

    def __post_init__(self):
        if not isinstance(self.patch, int) or self.patch < 1:
            raise ValueError(f"patch must be a positive int, got {self.patch!r}")
        if not isinstance(self.overlap, (int, float)) or not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap!r}")
        if self.stride < 1:
            raise ValueError(f"overlap {self.overlap} leaves a stride of 0 for patch {self.patch}")
        for name, value, choices in (("weighting", self.weighting, WEIGHTINGS),
                                     ("precision", self.precision, RESOLVED_PRECISIONS), ("mode", self.mode, MODES)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if not isinstance(self.subset_batch, int) or self.subset_batch < 1:
            raise ValueError(f"subset_batch must be an int >= 1, got {self.subset_batch!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true or false, got {self.channels_last!r}")

    @property
    def stride(self) -> int:
        return int(self.patch * (1 - self.overlap))


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start indices of the windows along one axis of ``size`` >= ``patch`` voxels (the references' rule)."""
    if size < patch:
        raise ValueError(f"axis of {size} voxels is shorter than the patch {patch}; pad it first")
    n = math.ceil((size - patch) / stride)
    return [i * stride for i in range(n)] + [size - patch]


def window_weights(patch: int, weighting: str) -> torch.Tensor:
    """Per-voxel weight of a window's prediction, float32 ``[P, P, P]``."""
    if weighting == "uniform":
        return torch.ones((patch,) * 3)
    if weighting == "gaussian":
        sigma = patch / 8
        x = torch.arange(patch, dtype=torch.float64) - (patch - 1) / 2
        g = torch.exp(-x**2 / (2 * sigma**2))
        # peak ~1 at the centre; the corners get exp(-24) > 0, so every voxel keeps a non-zero weight
        return (g[:, None, None] * g[None, :, None] * g[None, None, :]).float()
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def check_patch(model: nn.Module, patch: int) -> None:
    """Refuse a window the model cannot take (``input_size_problem`` of ``model.divisor``); mmFormer's token
    grid fixes the input size (``model.token_grid``)."""
    divisor = getattr(model, "divisor", 1)
    problem = input_size_problem((patch,) * 3, divisor)
    if problem:
        raise ValueError(f"patch {patch} does not suit {type(model).__name__}: {problem}")
    grid = getattr(model, "token_grid", None)
    if grid is not None and tuple(g * divisor for g in grid) != (patch,) * 3:
        raise ValueError(f"{type(model).__name__} was built for {tuple(g * divisor for g in grid)} inputs "
                         f"(its crop_size); the patch must match, got {patch}")


def _pad_to_patch(image: torch.Tensor, patch: int) -> torch.Tensor:
    """[M, X, Y, Z] padded at the end of every axis shorter than ``patch`` with each channel's background (its min)."""
    pad = [max(patch - s, 0) for s in image.shape[1:]]
    if not any(pad):
        return image
    background = image.flatten(1).amin(1)
    out = background[:, None, None, None].expand(image.shape[0], *(s + p for s, p in zip(image.shape[1:], pad)))
    out = out.clone()
    out[(slice(None),) + tuple(slice(0, s) for s in image.shape[1:])] = image
    return out


def predict_probabilities(model: nn.Module, image, settings: InferenceSettings,
                          masks, device: str | torch.device | None = None) -> torch.Tensor:
    """Class probabilities ``[len(masks), K, X, Y, Z]`` (float32, on ``device``) of ``image [M, X, Y, Z]`` for
    each modality mask (a task's: ``dcseg.tasks.Task.masks``, in its table order). ``model`` must be in eval
    mode."""
    if model.training:
        raise ValueError("model is in training mode (it would return training outputs); call model.eval() first")
    if device is None:  # where the model is (a parameter-free model runs on the CPU)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    check_patch(model, settings.patch)
    image = torch.as_tensor(image, dtype=torch.float32)
    if image.dim() != 4:
        raise ValueError(f"expected an image [M, X, Y, Z], got shape {tuple(image.shape)}")
    masks = torch.as_tensor(masks, dtype=torch.bool, device=device)
    if masks.dim() != 2 or masks.shape[1] != image.shape[0]:
        raise ValueError(f"expected masks [S, {image.shape[0]}], got shape {tuple(masks.shape)}")
    size = tuple(image.shape[1:])
    padded = _pad_to_patch(image, settings.patch).to(device)
    p = settings.patch
    starts = [window_starts(s, p, settings.stride) for s in padded.shape[1:]]
    weights = window_weights(p, settings.weighting).to(device)
    layout = memory_format(settings.channels_last)

    probabilities = None  # [S, K, X, Y, Z], allocated once the class count is known
    weight_sum = torch.zeros(padded.shape[1:], device=device)
    with torch.inference_mode():
        for corner in product(*starts):
            box = tuple(slice(c, c + p) for c in corner)
            window = padded[(slice(None),) + box][None].contiguous(memory_format=layout)
            for first, logits in _window_logits(model, window, masks, settings):
                window_probs = torch.softmax(logits.float(), dim=1)
                if probabilities is None:
                    probabilities = torch.zeros((len(masks), window_probs.shape[1]) + padded.shape[1:],
                                                device=device)
                if settings.weighting != "uniform":
                    window_probs = window_probs * weights
                probabilities[(slice(first, first + len(window_probs)), slice(None)) + box] += window_probs
            weight_sum[box] += weights
        probabilities /= weight_sum
    return probabilities[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)]


def _window_logits(model: nn.Module, window: torch.Tensor, masks: torch.Tensor, settings: InferenceSettings):
    """Yield (index of the first mask, logits ``[b, K, P, P, P]``) for consecutive chunks of ``masks``. Autocast
    covers the network calls only: the caller's softmax and accumulation stay float32."""
    def network():
        return autocast(settings.precision, window.device)

    if settings.mode == "independent":
        for i, mask in enumerate(masks):
            with network():
                logits = model(window, mask[None])
            yield i, logits
        return
    with network():
        features = model.encode(window)
    for first in range(0, len(masks), settings.subset_batch):
        chunk = masks[first:first + settings.subset_batch]
        # expand: a view, no copy; every decoder masks the features first, which materialises them
        repeated = [f.expand(len(chunk), *f.shape[1:]) for f in features]
        with network():
            logits = model.decode(repeated, chunk)
        yield first, logits


def predict_labels(model: nn.Module, image, settings: InferenceSettings, masks,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """Label maps ``[len(masks), X, Y, Z]`` (uint8, on CPU): the argmax of ``predict_probabilities``."""
    probabilities = predict_probabilities(model, image, settings, masks, device)
    return probabilities.argmax(dim=1).to(torch.uint8).cpu()


__all__ = ["InferenceSettings", "MODES", "WEIGHTINGS", "check_patch", "predict_labels",
           "predict_probabilities", "window_starts", "window_weights"]
