"""The blocks DC-Seg's two implementations build their disentanglement branch from (``docs/reference.md`` §DC-Seg,
§Official): the modality encoder E_mod and the AdaIN residual block of the reconstruction decoder D_rec.

Both implementations use the same shapes of these blocks and differ only in widths, biases, padding and the
normalisation inside AdaIN, which are arguments here; the modules that only one implementation has live in
``dcseg.models.dcseg`` (the paper's equations) and ``dcseg.models.official`` (the authors' code).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

AdaINParameters = tuple[torch.Tensor, torch.Tensor]  # (gain, shift), each [B, C]


class ModalityVectorEncoder(nn.Module):
    """E_mod_j: ``[B, 1, X, Y, Z]`` -> ``[B, dim]``: a 7^3 conv, one stride-2 4^3 conv per further width (ReLU after
    each), a global average pool and a 1^3 conv. No normalisation, so the vector keeps the image's contrast."""

    def __init__(self, widths: tuple[int, ...], dim: int, padding_mode: str = "reflect", bias: bool = True):
        super().__init__()
        conv = dict(padding_mode=padding_mode, bias=bias)
        layers: list[nn.Module] = [nn.Conv3d(1, widths[0], 7, padding=3, **conv), nn.ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv3d(c_in, c_out, 4, stride=2, padding=1, **conv), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.projection = nn.Conv3d(widths[-1], dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3, 4), keepdim=True)
        return self.projection(pooled).flatten(1)


def instance_standardise(h: torch.Tensor) -> torch.Tensor:
    """Instance norm without affine parameters: per sample and channel over space, population variance, eps 1e-5
    inside the square root (``dcseg.models.blocks.instance_norm``'s function)."""
    return F.group_norm(h, h.shape[1], eps=1e-5)


def adaptive_instance_norm(h: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor,
                           standardise: Callable[[torch.Tensor], torch.Tensor] = instance_standardise) -> torch.Tensor:
    """AdaIN(h) = gain * standardise(h) + shift, with gain/shift ``[B, C]`` broadcast over space."""
    expand = (...,) + (None,) * (h.dim() - 2)
    return gain[expand] * standardise(h) + shift[expand]


class AdaptiveResidualBlock(nn.Module):
    """h + AdaIN_2(conv2(ReLU(AdaIN_1(conv1(h))))) with 3^3 convs; each AdaIN gets its own (gain, shift)."""

    def __init__(self, channels: int, padding_mode: str, bias: bool = True,
                 standardise: Callable[[torch.Tensor], torch.Tensor] = instance_standardise):
        super().__init__()
        self.standardise = standardise
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode=padding_mode, bias=bias)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode=padding_mode, bias=bias)

    def forward(self, h: torch.Tensor, first: AdaINParameters, second: AdaINParameters) -> torch.Tensor:
        y = F.relu(adaptive_instance_norm(self.conv1(h), *first, standardise=self.standardise))
        return h + adaptive_instance_norm(self.conv2(y), *second, standardise=self.standardise)
