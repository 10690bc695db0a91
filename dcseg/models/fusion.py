"""RFNet's region-aware fusion, shared by RFNet and DC-Seg (reference: dyh127/RFNet @ 1e475fa5, layers.py, models.py).

- ``ProbabilityMapGenerator`` (the reference's ``prm_generator``): class logits from the masked modality stack (and,
  above the deepest level, the decoder feature). Softmax of these logits are the region probability maps.
- ``RegionAwareFusion`` (``region_aware_modal_fusion``): per region a small net weighs the modalities from their
  region-averaged features; the weighted, region-masked features of all regions are fused by convs, plus a shortcut
  on the plain modality stack.
- ``RegionAwareFusedDecoder`` (``Decoder_fuse``): the U-Net decoder whose skip at every level is the region-aware
  fusion of the masked modality features. It also returns the probability-map logits (deep supervision) and the
  fused deepest map (DC-Seg's z for the reconstruction decoders).

Departures from the reference, none of which changes the function computed:
- The number of modalities M is a parameter (quirk Q14; the quirk labels are defined in ``docs/reference.md``
  §Quirks: the reference hard-codes 4; its unused ``clsname_list`` is dropped).
- Logits instead of probabilities are returned; the RFM still receives the softmax, detached (quirk Q11,
  ``detach_probability_maps=True``), so the generators learn only from the deep-supervision loss.
- The region-weighted sum is computed as P_r * sum_k w_kr Y_k instead of materialising every Y_k * P_r, which needs
  M times less memory; region statistics are computed in float32 under autocast.
- The per-region weight nets are ``nn.Linear`` (the reference uses 1^3 Conv3d on a 1^3 map: the same map and
  parameter count, and the same Kaiming-normal weight init).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcseg.models.blocks import ConvBlock, as_float, full_precision, mask_modalities
from dcseg.models.decoders import UNetDecoder
from dcseg.models.encoders import encode_modalities

WEIGHT_NET_HIDDEN = 128  # hidden width of RFNet's per-region modality-weight net, not scaled with the base width
PROBABILITY_HEAD_HIDDEN = 16  # hidden width of the generator's classification head, likewise fixed in the reference


def _bottleneck(in_channels: int, channels: int, out_channels: int, padding_mode: str) -> nn.Sequential:
    """1^3 conv block -> 3^3 conv block -> 1^3 conv block, the pattern of every RFNet fusion/embedding branch."""
    return nn.Sequential(
        ConvBlock(in_channels, channels, kernel_size=1, padding_mode=padding_mode),
        ConvBlock(channels, channels, kernel_size=3, padding_mode=padding_mode),
        ConvBlock(channels, out_channels, kernel_size=1, padding_mode=padding_mode),
    )


class ProbabilityMapGenerator(nn.Module):
    """Region (class) logits from the masked stack ``[B, M, C, ...]`` and, except at the deepest level, the decoder
    feature ``[B, C, ...]``: head([D, E(Y)]) with E = 1^3 (MC -> C/4), 3^3 (C/4), 1^3 (C/4 -> C)."""

    def __init__(self, channels: int, num_modalities: int, num_classes: int, with_decoder_feature: bool,
                 padding_mode: str = "zeros"):
        super().__init__()
        self.with_decoder_feature = with_decoder_feature
        self.embedding = _bottleneck(num_modalities * channels, max(channels // 4, 1), channels, padding_mode)
        head_in = 2 * channels if with_decoder_feature else channels
        self.head = nn.Sequential(
            ConvBlock(head_in, PROBABILITY_HEAD_HIDDEN, kernel_size=1, padding_mode=padding_mode),
            nn.Conv3d(PROBABILITY_HEAD_HIDDEN, num_classes, kernel_size=1),
        )

    def forward(self, masked: torch.Tensor, decoder_feature: torch.Tensor | None = None) -> torch.Tensor:
        embedded = self.embedding(masked.flatten(1, 2))
        if self.with_decoder_feature:
            embedded = torch.cat((decoder_feature, embedded), dim=1)
        return self.head(embedded)


class RegionAwareFusion(nn.Module):
    """Fuse the masked stack ``[B, M, C, ...]`` with region probabilities ``[B, R, ...]`` into ``[B, C, ...]``.

    For region r: a_r = mean(P_r) + 1e-7, g_kr = mean(Y_k P_r) / a_r, w_r = sigmoid(net_r([g_1r .. g_Mr, a_r])),
    F_r = P_r * sum_k w_kr Y_k. Output = [fuse(F_1 .. F_R), shortcut(Y)], each half C/2 channels. A missing modality
    has Y_k = 0 and contributes nothing, whatever its weight.
    """

    def __init__(self, channels: int, num_modalities: int, num_regions: int, padding_mode: str = "zeros"):
        super().__init__()
        self.weight_nets = nn.ModuleList(
            nn.Sequential(nn.Linear(num_modalities * channels + 1, WEIGHT_NET_HIDDEN), nn.LeakyReLU(0.2),
                          nn.Linear(WEIGHT_NET_HIDDEN, num_modalities))
            for _ in range(num_regions))
        for net in self.weight_nets:
            for layer in net:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_normal_(layer.weight)  # 1^3 Conv3d in the reference, so Kaiming-initialised
        self.region_fusion = _bottleneck(num_regions * channels, channels, channels // 2, padding_mode)
        self.shortcut = _bottleneck(num_modalities * channels, channels, channels // 2, padding_mode)

    def forward(self, masked: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        with full_precision(masked):
            y = as_float(masked).flatten(3)  # [B, M, C, V]
            p = as_float(probabilities).flatten(2)  # [B, R, V]
            region_size = p.mean(-1) + 1e-7  # [B, R]
            region_mean = torch.einsum("bmcv,brv->brmc", y, p) / p.shape[-1] / region_size[..., None, None]
        net_dtype = self.weight_nets[0][0].weight.dtype
        weights = torch.stack([
            torch.sigmoid(net(torch.cat((region_mean[:, r].flatten(1), region_size[:, r:r + 1]), dim=1).to(net_dtype)))
            for r, net in enumerate(self.weight_nets)], dim=1)  # [B, R, M]
        weighted = torch.einsum("brm,bmc...->brc...", weights, masked)  # [B, R, C, ...]
        region_features = weighted * probabilities.unsqueeze(2).to(weighted.dtype)
        return torch.cat((self.region_fusion(region_features.flatten(1, 2)), self.shortcut(masked.flatten(1, 2))),
                         dim=1)


@dataclass
class FusedDecoderOutput:
    logits: torch.Tensor  # [B, K, X, Y, Z]
    probability_map_logits: list[torch.Tensor]  # per level, shallow to deep, native resolution [B, K, x_l, y_l, z_l]
    fused_deepest: torch.Tensor  # the deepest fusion output (RFM4 in RFNet) [B, C_deep, ...]: DC-Seg's z


class RegionAwareFusedDecoder(nn.Module):
    """RFNet's D_fuse over the per-level modality stacks ``[B, M, C_l, ...]`` (shallow to deep) and a mask ``[B, M]``.

    Deepest level: P = PRM(Y), F = RFM(Y, softmax(P)), d = F. Each level above: d = up(d), P = PRM(Y, d),
    F = RFM(Y, softmax(P)), d = merge(F, d). Then the class head.
    """

    def __init__(self, channels: list[int], num_modalities: int, num_classes: int, padding_mode: str = "zeros",
                 detach_probability_maps: bool = True):
        super().__init__()
        self.detach_probability_maps = detach_probability_maps
        deepest = len(channels) - 1
        self.decoder = UNetDecoder(channels, num_classes, padding_mode=padding_mode)
        self.probability_maps = nn.ModuleList(
            ProbabilityMapGenerator(c, num_modalities, num_classes, with_decoder_feature=level < deepest,
                                    padding_mode=padding_mode)
            for level, c in enumerate(channels))
        self.fusions = nn.ModuleList(
            RegionAwareFusion(c, num_modalities, num_classes, padding_mode=padding_mode) for c in channels)

    def _fuse(self, level: int, masked: torch.Tensor, d: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        prm_logits = self.probability_maps[level](masked, d)
        probabilities = torch.softmax(as_float(prm_logits), dim=1)
        if self.detach_probability_maps:
            probabilities = probabilities.detach()
        return self.fusions[level](masked, probabilities), prm_logits

    def forward(self, features: list[torch.Tensor], mask: torch.Tensor) -> FusedDecoderOutput:
        masked = [mask_modalities(f, mask) for f in features]
        deepest = len(features) - 1
        fused_deepest, prm_logits = self._fuse(deepest, masked[deepest], None)
        all_prm_logits = [prm_logits]
        d = fused_deepest
        for level in reversed(range(deepest)):
            d = self.decoder.up(d, level)
            fused, prm_logits = self._fuse(level, masked[level], d)
            all_prm_logits.insert(0, prm_logits)
            d = self.decoder.merge(fused, d, level)
        return FusedDecoderOutput(self.decoder.head(d), all_prm_logits, fused_deepest)


class RegionAwareFusionModel(nn.Module):
    """What RFNet and DC-Seg share at inference: per-modality encoders (``self.encoders``) and the region-aware fused
    decoder (``self.fused_decoder``). ``encode`` runs once per window; ``decode`` once per modality subset."""

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-level modality stacks ``[B, M, C_l, ...]``, shallow to deep."""
        return encode_modalities(self.encoders, x)

    def decode(self, features: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Fused class logits for a modality mask ``[B, M]``."""
        return self.fused_decoder(features, mask).logits
