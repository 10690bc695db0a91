"""DC-Seg (Li et al., MICCAI 2025): disentangled contrastive learning for brain tumour segmentation with missing
modalities.

Follows the paper (section 2, eqs. 1-9) on the RFNet code base, with the choices the paper leaves open taken
from the proposal recorded in ``docs/reference.md`` §DC-Seg; the authors' code could not be retrieved, so every
layer of E_mod and D_rec below is that proposal, not the authors' design.

- Anatomical encoders E_ana_j: RFNet's per-modality encoder (4 levels). a_j for L_ana is level ``anatomy_level``
  (default the deepest, 8 base x crop/8), of every modality whatever the mask.
- Modality encoders E_mod_j: a normalisation-free DRIT/MUNIT-style attribute encoder per modality (7^3 conv, four
  stride-2 4^3 convs, global average pool, 1^3 conv to ``modality_dim`` = 8), ReLU activations, reflect padding.
  Reference widths 16/32/64/64/64 (694,376 parameters each); the CPU profile uses the light 8/16/32/32/32 (175,160).
- Fusion z = F(delta_1 a_1, ..., delta_M a_M): RFNet's region-aware fused decoder on the masked anatomy, where the
  training mask is the latent modality dropout delta (uniform over the 15 subsets, drawn by the data loader). z is the
  deepest region-aware fusion output (RFM4); one fused pass serves both D_fuse and the reconstructions.
- Reconstruction decoders D_rec_j(z, m_j): per modality, 1^3 projection, two AdaIN residual blocks whose scales and
  shifts come from an MLP on m_j, three (x2 upsample, 3^3 conv) steps, a linear 3^3 conv to one channel. Every
  modality is reconstructed, missing ones included.
- D_sep: RFNet's weight-shared decoder on each modality's own (unmasked) anatomy (L_reg); D_fuse: RFNet's fused
  decoder (L_seg, which also keeps RFNet's probability-map deep supervision: the maps are detached before fusion, so
  the generators learn only from it).
- Temperatures: t = exp(t') with t' learnable, initialised to ln 10, clamped to [1, 100]; separate for L_ana and
  L_mod (``no_weight_decay_parameters`` names them for the optimiser).
Inference runs only the anatomical encoders, the fusion and D_fuse (``encode`` / ``decode``), so it costs the same
as RFNet. At reference widths: 14,009,446 parameters (RFNet's 8,984,960 + E_mod 2,777,504 + D_rec 2,246,980 + 2
temperatures), 11,932,582 with the light E_mod.

Ablations (paper Table 2) are configuration, not copies: ``dcseg.experiments.VARIANTS`` names the terms each
variant switches off, and ``ablation_overrides(variant)`` gives the model options that skip building modules whose
only loss is off.

Reference quirks (``docs/reference.md`` §Quirks), inherited from the RFNet code base: Q1 ``padding_mode``
default "zeros" (published runs), Q11 reproduced (``detach_probability_maps``, D_sep and encoders see every
modality), Q14 fixed (``num_modalities``; the paper's WMH setting has 2), Q7 the model returns logits and
``dcseg.losses`` applies the softmax, Q13 no legacy APIs. Q2/Q3/Q4/Q9 concern mmFormer only. Q5/Q6/Q12 are
``dcseg.data``'s, Q8 the evaluation's, Q10 and the 20-epoch fuse warm-up the trainer's (``fuse_weight`` of
``dcseg.losses.total_loss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcseg.data.brats import MODALITIES
from dcseg.experiments import VARIANTS
from dcseg.models.blocks import ConvBlock, check_input, init_conv_weights, upsample
from dcseg.models.decoders import UNetDecoder, decode_each_modality
from dcseg.models.encoders import ModalityEncoder, level_channels
from dcseg.models.fusion import RegionAwareFusedDecoder, RegionAwareFusionModel
from dcseg.models.outputs import TrainOutput

NUM_LEVELS = 4
RECONSTRUCTION_SOURCES = ("fused", "own_anatomy")


@dataclass
class DCSegConfig:
    num_modalities: int = len(MODALITIES)
    num_classes: int = 4
    base_channels: int = 16  # RFNet's width; the CPU profile uses 8
    padding_mode: str = "zeros"  # Q1
    detach_probability_maps: bool = True  # Q11
    anatomy_level: int = -1  # encoder level whose maps enter L_ana (-1 = deepest)
    modality_dim: int = 8
    modality_encoder_widths: tuple[int, ...] = (16, 32, 64, 64, 64)
    modality_encoder_padding_mode: str = "reflect"
    reconstruction_source: str = "fused"  # "fused": z = deepest region-aware fusion; "own_anatomy": a_j (fallback)
    learnable_temperature: bool = True
    initial_temperature: float = 10.0
    temperature_range: tuple[float, float] = (1.0, 100.0)
    with_separate_decoder: bool = True  # D_sep (L_reg)
    with_modality_encoder: bool = True  # E_mod (L_mod, L_rec)
    with_reconstruction: bool = True  # D_rec (L_rec)


class ModalityVectorEncoder(nn.Module):
    """E_mod_j: ``[B, 1, X, Y, Z]`` -> ``[B, dim]``. No normalisation, so the vector keeps the image's contrast."""

    def __init__(self, widths: tuple[int, ...], dim: int, padding_mode: str = "reflect"):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(1, widths[0], 7, padding=3, padding_mode=padding_mode), nn.ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv3d(c_in, c_out, 4, stride=2, padding=1, padding_mode=padding_mode), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.projection = nn.Conv3d(widths[-1], dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3, 4), keepdim=True)
        return self.projection(pooled).flatten(1)


def adaptive_instance_norm(h: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """AdaIN(h) = (1 + scale) * IN(h) + shift, with scale/shift ``[B, C]``."""
    expand = (...,) + (None,) * (h.dim() - 2)
    normalised = F.group_norm(h, h.shape[1], eps=1e-5)  # instance norm (see dcseg.models.blocks.instance_norm)
    return (1 + scale[expand]) * normalised + shift[expand]


class AdaptiveResidualBlock(nn.Module):
    """h + AdaIN(conv(ReLU(AdaIN(conv(h)))))."""

    def __init__(self, channels: int, padding_mode: str):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode=padding_mode)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode=padding_mode)

    def forward(self, h: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale1, shift1, scale2, shift2 = style.chunk(4, dim=1)
        y = F.relu(adaptive_instance_norm(self.conv1(h), scale1, shift1))
        return h + adaptive_instance_norm(self.conv2(y), scale2, shift2)


class ReconstructionDecoder(nn.Module):
    """D_rec_j(z, m_j): ``[B, C_in, ...]`` and ``[B, dim]`` -> one image channel ``[B, 1, ...]`` upsampled
    ``2**num_upsamplings`` times. Linear output: the targets are z-scored and can be negative."""

    def __init__(self, in_channels: int, width: int, modality_dim: int, num_upsamplings: int,
                 padding_mode: str = "zeros", num_blocks: int = 2):
        super().__init__()
        self.projection = ConvBlock(in_channels, width, kernel_size=1, padding_mode=padding_mode)
        self.blocks = nn.ModuleList(AdaptiveResidualBlock(width, padding_mode) for _ in range(num_blocks))
        self.style = nn.Sequential(nn.Linear(modality_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                   nn.Linear(width, num_blocks * 4 * width))
        widths = [width // 2**i for i in range(num_upsamplings + 1)]
        self.up_convs = nn.ModuleList(ConvBlock(c_in, c_out, padding_mode=padding_mode)
                                      for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.output = nn.Conv3d(widths[-1], 1, 3, padding=1, padding_mode=padding_mode)

    def forward(self, z: torch.Tensor, modality_vector: torch.Tensor) -> torch.Tensor:
        h = self.projection(z)
        for block, style in zip(self.blocks, self.style(modality_vector).chunk(len(self.blocks), dim=1)):
            h = block(h, style)
        for conv in self.up_convs:
            h = conv(upsample(h))
        return self.output(h)


class DCSeg(RegionAwareFusionModel):
    divisor = 2 ** (NUM_LEVELS - 1)

    def __init__(self, config: DCSegConfig):
        super().__init__()
        self.config = config
        if config.with_reconstruction and not config.with_modality_encoder:
            raise ValueError("the reconstruction decoders need the modality encoders (with_modality_encoder=True)")
        if config.reconstruction_source not in RECONSTRUCTION_SOURCES:
            raise ValueError(f"reconstruction_source must be one of {RECONSTRUCTION_SOURCES}")
        m, base = config.num_modalities, config.base_channels
        channels = level_channels(base, NUM_LEVELS)
        self.encoders = nn.ModuleList(  # E_ana
            ModalityEncoder(base, NUM_LEVELS, padding_mode=config.padding_mode) for _ in range(m))
        self.fused_decoder = RegionAwareFusedDecoder(channels, m, config.num_classes, padding_mode=config.padding_mode,
                                                     detach_probability_maps=config.detach_probability_maps)
        self.separate_decoder = (UNetDecoder(channels, config.num_classes, padding_mode=config.padding_mode)
                                 if config.with_separate_decoder else None)
        self.modality_encoders = (nn.ModuleList(
            ModalityVectorEncoder(tuple(config.modality_encoder_widths), config.modality_dim,
                                  config.modality_encoder_padding_mode) for _ in range(m))
            if config.with_modality_encoder else None)
        self.reconstruction_decoders = (nn.ModuleList(
            ReconstructionDecoder(channels[-1], channels[-1] // 2, config.modality_dim, NUM_LEVELS - 1,
                                  padding_mode=config.padding_mode) for _ in range(m))
            if config.with_reconstruction else None)
        log_t = torch.full((), math.log(config.initial_temperature))
        if config.learnable_temperature:
            self.log_temperature_anatomy = nn.Parameter(log_t.clone())
            self.log_temperature_modality = nn.Parameter(log_t.clone())
        else:
            self.register_buffer("log_temperature_anatomy", log_t.clone())
            self.register_buffer("log_temperature_modality", log_t.clone())
        init_conv_weights(self)

    def _temperature(self, log_t: torch.Tensor) -> torch.Tensor:
        return log_t.exp().clamp(*self.config.temperature_range)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_input(x, mask, self.config.num_modalities, self.divisor)
        anatomy = self.encode(x)
        if not self.training:
            return self.decode(anatomy, mask)
        fused = self.fused_decoder(anatomy, mask)  # mask = the latent modality dropout delta
        out = TrainOutput(
            fused_logits=fused.logits,
            deep_supervision_logits=fused.probability_map_logits,
            anatomy=anatomy[self.config.anatomy_level],
            anatomy_temperature=self._temperature(self.log_temperature_anatomy),
        )
        if self.separate_decoder is not None:
            out.modality_logits = decode_each_modality(self.separate_decoder, anatomy)
        if self.modality_encoders is not None:
            out.modality_vectors = torch.stack(
                [encoder(x[:, j:j + 1]) for j, encoder in enumerate(self.modality_encoders)], dim=1)
            out.modality_temperature = self._temperature(self.log_temperature_modality)
        if self.reconstruction_decoders is not None:
            if self.config.reconstruction_source == "fused":
                sources = [fused.fused_deepest] * self.config.num_modalities
            else:
                sources = anatomy[-1].unbind(1)
            out.reconstructions = torch.cat(
                [decoder(z, out.modality_vectors[:, j])
                 for j, (decoder, z) in enumerate(zip(self.reconstruction_decoders, sources))], dim=1)
        return out

    def no_weight_decay_parameters(self) -> list[str]:
        """The learnable temperatures (SigLIP practice: no weight decay on t')."""
        return [n for n, _ in self.named_parameters() if n.startswith("log_temperature_")]


def ablation_overrides(variant: str) -> dict[str, bool]:
    """Model options for a paper Table 2 variant (dcseg.experiments.VARIANTS): modules whose every loss is switched
    off are not built."""
    off = VARIANTS[variant]
    return {
        "with_separate_decoder": "reg" not in off,
        "with_modality_encoder": not {"mod", "rec"} <= off,
        "with_reconstruction": "rec" not in off,
    }
