"""DC-Seg (Li et al., MICCAI 2025): disentangled contrastive learning for brain tumour segmentation with missing
modalities.

Two implementations, one option (``DCSegConfig.implementation``), sharing every block they have in common:

- "equations" (default): the paper (section 2, eqs. 1-9) on the RFNet code base, with the choices the paper leaves
  open taken from the proposal recorded in ``docs/reference.md`` §DC-Seg; every layer of E_mod and D_rec below is
  that proposal. This is what the list below describes.
- "official": the copy of the authors' code (``docs/reference.md`` §Official): the same RFNet part, padded by
  reflection; its own E_mod and D_rec (``dcseg.models.official``); a fixed temperature 1/0.07; and, in
  ``dcseg.losses``, its windowed SSIM, MSE reconstruction loss and KL term. At reference widths 39,922,368 parameters
  (RFNet's 8,984,960 + 4 x 2,779,872 + 4 x 4,954,480), 40,043,200 with ``keep_unused_parameters``.

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
default "zeros" (the published RFNet runs) for "equations", "reflect" for "official" (whose PyTorch 2.5 really
reflects), Q11 reproduced (``detach_probability_maps``, D_sep and encoders see every modality), Q14 fixed
(``num_modalities``; the paper's WMH setting has 2), Q7 the model returns logits and ``dcseg.losses`` applies the
softmax, Q13 no legacy APIs. Q2/Q3/Q4/Q9 concern mmFormer only. Q5/Q6/Q12 are ``dcseg.data``'s, Q8 the
evaluation's, Q10 and the 20-epoch fuse warm-up the trainer's (``fuse_weight`` of ``dcseg.losses.total_loss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dcseg.data.brats import MODALITIES
from dcseg.experiments import VARIANTS
from dcseg.models import official
from dcseg.models.blocks import ConvBlock, check_input, init_conv_weights, upsample
from dcseg.models.decoders import UNetDecoder, decode_each_modality
from dcseg.models.disentangle import AdaptiveResidualBlock, ModalityVectorEncoder
from dcseg.models.encoders import ModalityEncoder, level_channels
from dcseg.models.fusion import RegionAwareFusedDecoder, RegionAwareFusionModel
from dcseg.models.outputs import TrainOutput

NUM_LEVELS = 4
RECONSTRUCTION_SOURCES = ("fused", "own_anatomy")
IMPLEMENTATIONS = ("equations", "official")
DEFAULT_PADDING = {"equations": "zeros", "official": "reflect"}


@dataclass
class DCSegConfig:
    num_modalities: int = len(MODALITIES)
    num_classes: int = 4
    base_channels: int = 16  # RFNet's width; the CPU profile uses 8
    implementation: str = "equations"  # "equations" (the paper's, §DC-Seg) | "official" (authors' code, §Official)
    padding_mode: str | None = None  # Q1; None = the implementation's (DEFAULT_PADDING)
    detach_probability_maps: bool = True  # Q11
    anatomy_level: int = -1  # encoder level whose maps enter L_ana (-1 = deepest)
    # "equations" only: "official" has its own E_mod and D_rec (dcseg.models.official) and a fixed temperature
    modality_dim: int = 8
    modality_encoder_widths: tuple[int, ...] = (16, 32, 64, 64, 64)
    modality_encoder_padding_mode: str = "reflect"
    learnable_temperature: bool = True
    initial_temperature: float = 10.0
    temperature_range: tuple[float, float] = (1.0, 100.0)  # also the official clamp of log t to [0, ln 100]
    # "official" only: its two never-used gated-fusion convs (reference parameter count and weight decay only)
    keep_unused_parameters: bool = False
    reconstruction_source: str = "fused"  # "fused": z = deepest region-aware fusion; "own_anatomy": a_j (fallback)
    with_separate_decoder: bool = True  # D_sep (L_reg)
    with_modality_encoder: bool = True  # E_mod (L_mod, L_rec; "official": also the KL term)
    with_reconstruction: bool = True  # D_rec (L_rec)


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
            scale1, shift1, scale2, shift2 = style.chunk(4, dim=1)
            h = block(h, (1 + scale1, shift1), (1 + scale2, shift2))  # gains 1 + scale: identity AdaIN at 0
        for conv in self.up_convs:
            h = conv(upsample(h))
        return self.output(h)


class DCSeg(RegionAwareFusionModel):
    divisor = 2 ** (NUM_LEVELS - 1)

    def __init__(self, config: DCSegConfig):
        super().__init__()
        self.config = config
        if config.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {config.implementation!r}")
        self.is_official = config.implementation == "official"
        if config.keep_unused_parameters and not self.is_official:
            raise ValueError("keep_unused_parameters concerns implementation='official' only")
        if config.with_reconstruction and not config.with_modality_encoder:
            raise ValueError("the reconstruction decoders need the modality encoders (with_modality_encoder=True)")
        if config.reconstruction_source not in RECONSTRUCTION_SOURCES:
            raise ValueError(f"reconstruction_source must be one of {RECONSTRUCTION_SOURCES}")
        m, base = config.num_modalities, config.base_channels
        padding = config.padding_mode or DEFAULT_PADDING[config.implementation]
        channels = level_channels(base, NUM_LEVELS)
        self.encoders = nn.ModuleList(  # E_ana
            ModalityEncoder(base, NUM_LEVELS, padding_mode=padding) for _ in range(m))
        self.fused_decoder = RegionAwareFusedDecoder(channels, m, config.num_classes, padding_mode=padding,
                                                     detach_probability_maps=config.detach_probability_maps)
        self.separate_decoder = (UNetDecoder(channels, config.num_classes, padding_mode=padding)
                                 if config.with_separate_decoder else None)
        self.modality_encoders = self.adain_parameter_nets = self.reconstruction_decoders = None
        if self.is_official:
            self._build_official_disentanglement(channels[-1])
        else:
            self._build_equations_disentanglement(channels[-1], padding)
        init_conv_weights(self)

    def _build_equations_disentanglement(self, z_channels: int, padding: str) -> None:
        config, m = self.config, self.config.num_modalities
        if config.with_modality_encoder:
            self.modality_encoders = nn.ModuleList(
                ModalityVectorEncoder(tuple(config.modality_encoder_widths), config.modality_dim,
                                      config.modality_encoder_padding_mode) for _ in range(m))
        if config.with_reconstruction:
            self.reconstruction_decoders = nn.ModuleList(
                ReconstructionDecoder(z_channels, z_channels // 2, config.modality_dim, NUM_LEVELS - 1,
                                      padding_mode=padding) for _ in range(m))
        self._temperatures(math.log(config.initial_temperature), config.learnable_temperature)

    def _build_official_disentanglement(self, z_channels: int) -> None:
        config, m = self.config, self.config.num_modalities
        widths = official.official_widths(config.base_channels)
        if config.with_modality_encoder:  # E_mod and, for the KL term that is always on, the AdaIN parameters
            self.modality_encoders = nn.ModuleList(official.modality_encoder(widths) for _ in range(m))
            self.adain_parameter_nets = nn.ModuleList(
                official.AdaINParameterNet(widths.code, z_channels) for _ in range(m))
        if config.with_reconstruction:
            self.reconstruction_decoders = nn.ModuleList(
                official.OfficialReconstructionDecoder(z_channels) for _ in range(m))
        if config.keep_unused_parameters:
            self.unused_gated_fusion = official.unused_gated_fusion_convs(z_channels, m)
        self._temperatures(math.log(official.TEMPERATURE), learnable=False)

    def _temperatures(self, log_t: float, learnable: bool) -> None:
        """t = exp(t') for L_ana and L_mod, clamped to ``temperature_range``; t' a parameter only if learnable."""
        for name in ("log_temperature_anatomy", "log_temperature_modality"):
            value = torch.full((), log_t)
            if learnable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def _temperature(self, log_t: torch.Tensor) -> torch.Tensor:
        return log_t.exp().clamp(*self.config.temperature_range)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_input(x, mask, self.config.num_modalities, self.divisor)
        anatomy = self.encode(x)
        if not self.training:
            return self.decode(anatomy, mask)
        fused = self.fused_decoder(anatomy, mask)  # mask = the latent modality dropout delta
        out = (official.OfficialTrainOutput if self.is_official else TrainOutput)(
            fused_logits=fused.logits,
            deep_supervision_logits=fused.probability_map_logits,
            anatomy=anatomy[self.config.anatomy_level],
            anatomy_temperature=self._temperature(self.log_temperature_anatomy),
        )
        if self.separate_decoder is not None:
            out.modality_logits = decode_each_modality(self.separate_decoder, anatomy)
        if self.modality_encoders is None:
            return out
        out.modality_vectors = torch.stack(
            [encoder(x[:, j:j + 1]) for j, encoder in enumerate(self.modality_encoders)], dim=1)
        out.modality_temperature = self._temperature(self.log_temperature_modality)
        # what D_rec_j is conditioned on: m_j (equations) or the AdaIN (mu_j, sigma_j) computed from it (official)
        if self.adain_parameter_nets is not None:
            means, scales = zip(*(net(out.modality_vectors[:, j]) for j, net in enumerate(self.adain_parameter_nets)))
            out.adain_means, out.adain_scales = torch.stack(means, dim=1), torch.stack(scales, dim=1)
            conditions = list(zip(means, scales))
        else:
            conditions = [(v,) for v in out.modality_vectors.unbind(1)]
        if self.reconstruction_decoders is not None:
            if self.config.reconstruction_source == "fused":
                sources = [fused.fused_deepest] * self.config.num_modalities
            else:
                sources = anatomy[-1].unbind(1)
            out.reconstructions = torch.cat(
                [decoder(z, *condition)
                 for decoder, z, condition in zip(self.reconstruction_decoders, sources, conditions)], dim=1)
        return out

    def no_weight_decay_parameters(self) -> list[str]:
        """The learnable temperatures (SigLIP practice: no weight decay on t')."""
        return [n for n, _ in self.named_parameters() if n.startswith("log_temperature_")]


def ablation_overrides(variant: str) -> dict[str, bool]:
    """Model options for a paper Table 2 variant (dcseg.experiments.VARIANTS): modules whose every loss is switched
    off are not built. (With implementation="official" the modality encoders also feed the KL term, which the
    official training adds in every variant, ``no_rec`` included; no variant switches off both L_mod and L_rec.)"""
    off = VARIANTS[variant]
    return {
        "with_separate_decoder": "reg" not in off,
        "with_modality_encoder": not {"mod", "rec"} <= off,
        "with_reconstruction": "rec" not in off,
    }
