"""The U-Net decoder shared by the weight-shared per-modality decoder (D_sep) and the fused decoders (D_fuse).

In both references the two decoders have the same convolutions (RFNet: 586,388 parameters each at base 16):
per level, going up, ``up_conv`` after a x2 trilinear upsampling, then ``merge_conv`` (3^3) on the concatenation of a
skip feature and the decoder feature, then ``out_conv`` (1^3); finally a 1^3 ``head`` to class logits. D_sep takes
the skips from one modality's own encoder; the fused decoders compute each skip by fusing the masked modalities
(see ``fusion.RegionAwareFusedDecoder`` and mmFormer's decoder), driving this class level by level.

Concatenation order is [skip, decoder feature] everywhere. RFNet's Decoder_sep concatenates the other way round;
that is only a permutation of the merge conv's input weights (same function class, same parameter count).
The heads return logits; the losses apply the softmax (see ``dcseg.losses``).
"""

from __future__ import annotations

import torch
from torch import nn

from dcseg.models.blocks import ConvBlock, upsample


class UNetDecoder(nn.Module):
    """Decoder over ``len(channels)`` levels (channels shallow to deep) ending in ``num_classes`` logits."""

    def __init__(self, channels: list[int], num_classes: int, padding_mode: str = "zeros", prenorm: bool = False):
        super().__init__()
        self.num_levels = len(channels)
        block = dict(padding_mode=padding_mode, prenorm=prenorm)
        # index l builds level l from level l + 1
        self.up_convs = nn.ModuleList(ConvBlock(deep, shallow, **block) for shallow, deep in zip(channels, channels[1:]))
        self.merge_convs = nn.ModuleList(ConvBlock(2 * c, c, **block) for c in channels[:-1])
        self.out_convs = nn.ModuleList(ConvBlock(c, c, kernel_size=1, **block) for c in channels[:-1])
        self.head = nn.Conv3d(channels[0], num_classes, kernel_size=1)

    def up(self, d: torch.Tensor, level: int) -> torch.Tensor:
        """Decoder feature of level ``level + 1`` -> upsampled and projected to level ``level``'s channels."""
        return self.up_convs[level](upsample(d))

    def merge(self, skip: torch.Tensor, d: torch.Tensor, level: int) -> torch.Tensor:
        return self.out_convs[level](self.merge_convs[level](torch.cat((skip, d), dim=1)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Plain U-Net decoding of one feature pyramid (shallow to deep) -> logits at full resolution."""
        d = features[-1]
        for level in reversed(range(self.num_levels - 1)):
            d = self.merge(features[level], self.up(d, level), level)
        return self.head(d)


def decode_each_modality(decoder: UNetDecoder, features: list[torch.Tensor]) -> torch.Tensor:
    """Apply the weight-shared D_sep to every modality's own, unmasked features (quirk Q11, as both references;
    ``docs/reference.md`` §Quirks).

    features: per level ``[B, M, C_l, ...]``. Returns logits ``[B, M, K, X, Y, Z]``. The M modalities are folded into
    the batch: InstanceNorm is per sample, so this equals M separate calls.
    """
    b, m = features[0].shape[:2]
    logits = decoder([f.flatten(0, 1) for f in features])
    return logits.unflatten(0, (b, m))
