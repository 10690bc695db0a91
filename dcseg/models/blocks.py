"""Small building blocks shared by DC-Seg, RFNet and mmFormer.

Both reference code bases (dyh127/RFNet @ 1e475fa5, YaoZhang93/mmFormer @ b18663ad) build everything out of one
conv block: Conv3d + InstanceNorm3d(affine=False) + LeakyReLU(0.2). RFNet applies it post-norm (conv -> norm -> act),
mmFormer pre-norm (norm -> act -> conv). Both are here as one class with a ``prenorm`` switch.

Instance norm is computed as ``nn.GroupNorm`` with one group per channel and no affine parameters: the same function
as the references' ``InstanceNorm3d(affine=False)`` (per sample and channel, over space, eps 1e-5), about twice as
fast on CPU and without the view that makes the in-place activation expensive.

Padding (quirk Q1; the quirk labels are defined in ``docs/reference.md`` §Quirks): the references ask for
``padding_mode='reflect'`` but ran on PyTorch 1.2, where any mode other than 'circular' silently meant zero padding.
``padding_mode`` is therefore an option everywhere; the models default to "zeros", which matches the published runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
TINY_MAP = 2  # voxels: maps this small run their convolutions in fp32 under CPU bf16 autocast (see ConvBlock)


class ConvBlock(nn.Module):
    """Conv3d(k, stride, padding k//2, bias) with InstanceNorm3d (no affine, no running stats) and LeakyReLU(0.2).

    prenorm=False: conv -> norm -> act (RFNet's ``general_conv3d``).
    prenorm=True:  norm -> act -> conv (mmFormer's ``general_conv3d_prenorm``). The reference sizes that norm by the
    output channels but applies it to the input (quirk Q9); without affine parameters the two are the same
    function, so the norm here is simply over the input channels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding_mode: str = "zeros", prenorm: bool = False):
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.prenorm = prenorm
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                              padding_mode=padding_mode, bias=True)
        self.norm = instance_norm(in_channels if prenorm else out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and min(x.shape[2:]) <= TINY_MAP and torch.is_autocast_enabled("cpu"):
            # PyTorch 2.13 on CPU: the bf16 conv3d weight gradient is wrong or NaN on maps <= 2 voxels wide
            # (mmFormer's deepest level at a 32^3 crop). These maps are tiny, so fp32 here costs nothing.
            with torch.autocast("cpu", enabled=False):
                return self._forward(x.float())
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prenorm:
            return self.conv(self.act(self.norm(x)))
        return self.act(self.norm(self.conv(x)))


def instance_norm(channels: int) -> nn.GroupNorm:
    """InstanceNorm3d(affine=False) as GroupNorm with one group per channel (same function, faster on CPU)."""
    return nn.GroupNorm(channels, channels, eps=1e-5, affine=False)


def upsample(x: torch.Tensor, scale_factor: int = 2) -> torch.Tensor:
    """Trilinear upsampling with align_corners=True, as ``nn.Upsample`` in both references."""
    return F.interpolate(x, scale_factor=scale_factor, mode="trilinear", align_corners=True)


def mask_modalities(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the features of missing modalities: features ``[B, M, ...]``, mask bool ``[B, M]`` (True = available).

    This is the references' feature-level masking (``y[mask] = x[mask]`` on a zero tensor). ``torch.where`` rather than
    a multiplication, so that not even a NaN/inf in a masked-out modality reaches the output.
    """
    if mask.shape != features.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(features.shape[:2])}")
    mask = mask.to(device=features.device, dtype=torch.bool)
    mask = mask.reshape(*mask.shape, *([1] * (features.dim() - 2)))
    return torch.where(mask, features, features.new_zeros(()))


def input_size_problem(size: Sequence[int], divisor: int) -> str | None:
    """Why a network that downsamples by ``divisor`` cannot take spatial ``size``, or None. Every axis must be
    divisible by ``divisor``, and the deepest level must keep more than one voxel: instance norm over a single voxel
    maps it to zero, so that level would carry nothing (measured: mmFormer at 16^3 trained with a 1^3 bottleneck
    and failed at its first one-window validation)."""
    size = tuple(int(s) for s in size)
    if any(s % divisor for s in size):
        return f"spatial size {size} must be divisible by {divisor}"
    if math.prod(s // divisor for s in size) < 2:
        return (f"spatial size {size} leaves one voxel at the deepest level (size / {divisor}), where instance norm "
                f"outputs zeros; at least one axis must be {2 * divisor} or more")
    return None


def check_input(x: torch.Tensor, mask: torch.Tensor, num_modalities: int, divisor: int) -> None:
    """Validate the common model interface: x ``[B, M, X, Y, Z]``, mask bool ``[B, M]``, a spatial size the network
    can take (``input_size_problem``)."""
    if x.dim() != 5 or x.shape[1] != num_modalities:
        raise ValueError(f"expected x of shape [B, {num_modalities}, X, Y, Z], got {tuple(x.shape)}")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"expected mask of shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = available), got {mask.dtype}")
    problem = input_size_problem(x.shape[2:], divisor)
    if problem:
        raise ValueError(problem)


def init_conv_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_in, gain sqrt 2) on every Conv3d weight; biases keep PyTorch's default (both references)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight)


def full_precision(t: torch.Tensor):
    """A context that switches autocast off, for reductions over whole maps that bf16 would spoil."""
    device_type = t.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return nullcontext()


def as_float(t: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
