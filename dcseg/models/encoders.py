"""Per-modality convolutional encoder (RFNet's ``Encoder``, mmFormer's ``Encoder``; DC-Seg's anatomical encoder).

Level 1 at full resolution: a stem, then a residual pair x + B(B(x)). Every further level halves the resolution with a
stride-2 block and adds a residual pair. Channels are base * 2**level.

- RFNet / DC-Seg: 4 levels, post-norm blocks, the stem is a conv block (16, 32, 64, 128 channels at base 16).
- mmFormer: 5 levels, pre-norm blocks, the stem is a plain conv (8 ... 128 channels at base 8); a pre-norm block as
  stem would normalise the raw one-channel image, which the reference does not do.
"""

from __future__ import annotations

import torch
from torch import nn

from dcseg.models.blocks import ConvBlock


def level_channels(base_channels: int, num_levels: int) -> list[int]:
    """Channels per level, shallow to deep: base, 2 base, 4 base, ..."""
    return [base_channels * 2**level for level in range(num_levels)]


class ResidualPair(nn.Module):
    """x + B(B(x)), the second half of every encoder level."""

    def __init__(self, channels: int, padding_mode: str, prenorm: bool):
        super().__init__()
        self.first = ConvBlock(channels, channels, padding_mode=padding_mode, prenorm=prenorm)
        self.second = ConvBlock(channels, channels, padding_mode=padding_mode, prenorm=prenorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x))


class ModalityEncoder(nn.Module):
    """One modality's encoder: ``[B, in_channels, X, Y, Z]`` -> list of per-level features, shallow to deep."""

    def __init__(self, base_channels: int, num_levels: int, padding_mode: str = "zeros", prenorm: bool = False,
                 in_channels: int = 1):
        super().__init__()
        channels = level_channels(base_channels, num_levels)
        if prenorm:
            stem = nn.Conv3d(in_channels, channels[0], 3, padding=1, padding_mode=padding_mode)
        else:
            stem = ConvBlock(in_channels, channels[0], padding_mode=padding_mode)
        self.downsample = nn.ModuleList([stem])  # level 0 keeps the resolution
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            self.downsample.append(ConvBlock(c_in, c_out, stride=2, padding_mode=padding_mode, prenorm=prenorm))
        self.residual = nn.ModuleList(ResidualPair(c, padding_mode, prenorm) for c in channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for down, residual in zip(self.downsample, self.residual):
            x = residual(down(x))
            features.append(x)
        return features


def encode_modalities(encoders: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """Run encoder j on channel j of x ``[B, M, X, Y, Z]``; return per level the stack ``[B, M, C_l, ...]``.

    Every encoder sees its real input channel whatever the mask (quirk Q11, ``docs/reference.md`` §Quirks): missing
    modalities are removed later, at feature level.
    """
    per_modality = [encoder(x[:, j:j + 1]) for j, encoder in enumerate(encoders)]
    return [torch.stack(level, dim=1) for level in zip(*per_modality)]
