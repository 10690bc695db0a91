"""The parts of DC-Seg's official implementation that the paper's equations do not have (``docs/reference.md``
§Official; selected by ``DCSegConfig(implementation="official")``, built by ``dcseg.models.dcseg.DCSeg``).

Read from the copy labelled "Official implementation" (``docs/reference.md`` §Sources); written from that reading,
no code copied. Checked against golden fixtures produced by that code (tests/test_dcseg_official.py).

- E_mod_j ("style encoder"): the shared ``ModalityVectorEncoder`` without biases and with zero padding, widths
  32/64/128/128/128 and a 128-d code.
- D_rec_j ("image decoder"): an MLP on the code gives one (mu, sigma) pair of C values (``AdaINParameterNet``); four
  AdaIN residual blocks at C channels all use gain sigma and shift mu, where AdaIN standardises with the unbiased
  standard deviation plus 1e-5 (``unbiased_standardise``); then three (x2 trilinear upsampling without corner
  alignment, 5^3 conv halving the channels, layer norm over C, D, H, W, ReLU) and a 7^3 conv to one channel. No conv
  has a bias; all pad with zeros. The MLP is kept apart from the rest so that the KL term on (mu, sigma), which the
  official loss always includes, still has its inputs when the reconstruction is ablated away.
- Widths: the code fixes them at RFNet's base width 16, where they are 2, 4, 8, 8, 8 (E_mod) and 8 (code, MLP and
  D_rec channels) times the base; ``official_widths`` keeps those multiples, so a narrower base (the CPU width's 8)
  narrows the official modules in proportion. D_rec's input is the deepest fusion output, 8 x base channels.
- The official model also builds two convs for its unused "gated" fusion (``unused_gated_fusion_convs``), only kept
  with ``keep_unused_parameters=True`` (reference parameter count and weight decay only; like mmFormer's quirk Q3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcseg.models.blocks import as_float, full_precision
from dcseg.models.disentangle import AdaptiveResidualBlock, ModalityVectorEncoder
from dcseg.models.outputs import TrainOutput

TEMPERATURE = 1 / 0.07  # exp(logit_scale) of the official contrastive losses, rebuilt (so never trained) every step
ADAIN_EPS = 1e-5
NUM_ADAIN_BLOCKS = 4
NUM_UPSAMPLINGS = 3


@dataclass(frozen=True)
class OfficialWidths:
    modality_encoder: tuple[int, ...]  # E_mod conv widths
    code: int  # E_mod output = MLP input = MLP hidden = AdaIN channels = D_rec's first width


def official_widths(base_channels: int) -> OfficialWidths:
    """The official widths at base 16 (32/64/128/128/128, code 128), as multiples of the base width."""
    b = base_channels
    return OfficialWidths(modality_encoder=(2 * b, 4 * b, 8 * b, 8 * b, 8 * b), code=8 * b)


@dataclass
class OfficialTrainOutput(TrainOutput):
    """``TrainOutput`` of the official implementation: ``dcseg.losses.total_loss`` computes the official terms for it
    (windowed SSIM in L_ana, MSE for L_rec, the KL term)."""

    adain_means: torch.Tensor | None = None
    """[B, M, C]: mu_j, the AdaIN shift of modality j's reconstruction decoder (KL term)."""
    adain_scales: torch.Tensor | None = None
    """[B, M, C]: sigma_j, its AdaIN gain."""


def modality_encoder(widths: OfficialWidths) -> ModalityVectorEncoder:
    return ModalityVectorEncoder(widths.modality_encoder, widths.code, padding_mode="zeros", bias=False)


class AdaINParameterNet(nn.Module):
    """Code ``[B, D]`` -> (mu, sigma), each ``[B, C]``: two ReLU linear layers, then one linear head each."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(code_dim, channels), nn.ReLU(), nn.Linear(channels, channels), nn.ReLU())
        self.mean = nn.Linear(channels, channels)
        self.scale = nn.Linear(channels, channels)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(code)
        return self.mean(h), self.scale(h)


def unbiased_standardise(h: torch.Tensor) -> torch.Tensor:
    """(h - mean) / (std + 1e-5) per sample and channel over space, std the unbiased (n - 1) one: the official AdaIN's
    normalisation (not instance norm's, which has the population variance and eps inside the root). In float32 under
    autocast, like instance norm."""
    dims = tuple(range(2, h.dim()))
    with full_precision(h):
        h = as_float(h)
        return (h - h.mean(dims, keepdim=True)) / (h.std(dims, keepdim=True) + ADAIN_EPS)


class OfficialReconstructionDecoder(nn.Module):
    """D_rec_j: z ``[B, C, d, d, d]`` and its AdaIN parameters -> one image channel ``[B, 1, 8d, 8d, 8d]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            AdaptiveResidualBlock(channels, "zeros", bias=False, standardise=unbiased_standardise)
            for _ in range(NUM_ADAIN_BLOCKS))
        widths = [channels // 2**i for i in range(NUM_UPSAMPLINGS + 1)]
        self.up_convs = nn.ModuleList(nn.Conv3d(c_in, c_out, 5, padding=2, bias=False)
                                      for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.output = nn.Conv3d(widths[-1], 1, 7, padding=3, bias=False)

    def forward(self, z: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        h = z
        for block in self.blocks:
            h = block(h, (scale, mean), (scale, mean))
        for conv in self.up_convs:
            # nn.Upsample(mode="trilinear") in the official code: align_corners=False, unlike RFNet's decoders
            h = conv(F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False))
            h = F.relu(F.layer_norm(h, h.shape[1:]))
        return self.output(h)


def unused_gated_fusion_convs(channels: int, num_modalities: int) -> nn.ModuleList:
    """The official model's ``content_attn`` (3^3, M C -> M) and ``content_share_conv_list`` (1^3, M C -> C) convs,
    which only its ``fusion_type='gated'`` uses; its published runs use 'RFM'. Their instance norms have no
    parameters."""
    return nn.ModuleList([nn.Conv3d(num_modalities * channels, num_modalities, 3, padding=1, bias=False),
                          nn.Conv3d(num_modalities * channels, channels, 1, bias=False)])
