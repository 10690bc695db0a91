"""mmFormer (Zhang et al., MICCAI 2022): multimodal medical transformer for incomplete multimodal brain tumour
segmentation.

Follows YaoZhang93/mmFormer @ b18663ad (mmformer/mmformer.py, layers.py), as read and measured in
``docs/reference.md`` §mmFormer; written from that reading, no code copied. At the reference widths (base 8,
transformer dim 512, MLP 4096, 8 heads, depth 1) and a 128^3 crop it has exactly 36,391,760 trainable parameters:
the reference's 36,654,416 minus its 262,656 never-used parameters.

Composition:
- per modality: a ``ModalityEncoder`` (5 levels, pre-norm, plain-conv stem), a 1^3 conv to the transformer width, a
  learned position embedding and an intra-modal transformer over the deepest grid;
- the masked intra-modal tokens of all modalities go through one inter-modal transformer (position embedding = the
  per-modality embeddings, the same parameters), are folded back to a map and projected by a 1^3 conv;
- the fused decoder: the shared ``UNetDecoder`` whose skip at every level is a conv fusion (1^3, 3^3, 1^3 pre-norm
  blocks) of the masked modality stack, with a logit head at every level but the shallowest for deep supervision;
- the weight-shared ``UNetDecoder`` (D_sep, pre-norm) on each modality's own CNN features.
Intra-modal transformers are per modality, so they run in ``encode(x)``; masking, the inter-modal transformer and the
decoders run in ``decode(features, mask)``.

Interface: ``model(x, mask)``, x ``[B, M, X, Y, Z]`` with the spatial size given by ``crop_size`` (the token grid is
crop / 16), mask bool ``[B, M]``. Eval mode: class logits; train mode: a ``TrainOutput``.

Reference quirks (labels defined in ``docs/reference.md`` §Quirks):
- Q1 padding: ``padding_mode`` option for the encoder and decoder convs, default "zeros" = the published PyTorch 1.2
  runs (the code asks for 'reflect'; its fusion blocks use zeros either way, as here).
- Q2 inter-modal reshape, reproduced by default (the published network, whose weights and numbers come from it): the
  raw view of the reference, which puts M consecutive tokens of one modality into each grid cell.
  ``fold_tokens_per_modality=True`` fixes it: each modality's tokens are folded back to their own grid cells, so the
  channels are modality x transformer dim at the token's own cell (not the published function).
- Q3 the 4 unused ``*_decode_conv`` layers are left out (``keep_unused_parameters=True`` adds them back, only to
  reproduce the reference's parameter count and weight decay; they never affect the output).
- Q4 the token grid follows ``crop_size`` instead of being fixed to 8^3 (128^3 inputs); an input of another size is
  refused. Cropped volumes shorter than the crop are the data/evaluation code's business.
- Q7 loss: the model returns logits; ``dcseg.losses`` applies the softmax (numerically the reference's loss).
- Q9 fixed: pre-norm blocks normalise over their input channels (no parameters either way).
- Q11 reproduced: encoders and D_sep see all modalities; missing modalities are zeroed at feature level (levels 1-4
  and the intra-modal tokens; their position embedding still enters the inter-modal transformer, as in the
  reference).
- Q13 legacy APIs not used; Q14 fixed: the number of modalities is a parameter.
- Q5, Q6, Q12 belong to ``dcseg.data``; Q8 to the evaluation; Q10 and the absence of a fuse warm-up to the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcseg.data.brats import MODALITIES
from dcseg.models.blocks import ConvBlock, check_input, init_conv_weights, mask_modalities
from dcseg.models.decoders import UNetDecoder, decode_each_modality
from dcseg.models.encoders import ModalityEncoder, encode_modalities, level_channels
from dcseg.models.outputs import TrainOutput

NUM_LEVELS = 5
DOWNSAMPLING = 2 ** (NUM_LEVELS - 1)  # input size / token grid size


@dataclass
class MMFormerConfig:
    num_modalities: int = len(MODALITIES)
    num_classes: int = 4
    base_channels: int = 8
    transformer_dim: int = 512
    mlp_dim: int = 4096
    heads: int = 8
    depth: int = 1
    dropout: float = 0.1
    crop_size: int | tuple[int, int, int] = 128  # Q4: the token grid is crop_size / 16
    padding_mode: str = "zeros"  # Q1
    fold_tokens_per_modality: bool = False  # Q2: False = the published raw reshape
    keep_unused_parameters: bool = False  # Q3


class SelfAttention(nn.Module):
    """Multi-head self-attention: qkv without bias, scale head_dim^-0.5, dropout on the attention weights and after
    the output projection."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class TransformerLayer(nn.Module):
    """Pre-LN layer: x + Drop(Attn(LN x)), then x + FFN(LN x). The extra dropout after the attention branch is the
    reference's ``PreNormDrop``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_drop(self.attn(self.attn_norm(x)))
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """``depth`` layers; the position embedding is added again before every layer, as in the reference."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, heads, mlp_dim, dropout) for _ in range(depth))

    def forward(self, tokens: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tokens = layer(tokens + position)
        return tokens


def _conv_fusion(num_modalities: int, channels: int) -> nn.Sequential:
    """mmFormer's per-level fusion (named RFM* in the reference, but no region awareness): pre-norm 1^3 (MC -> C),
    3^3, 1^3. Zero padding regardless of ``padding_mode``: the reference does not ask for reflection here."""
    return nn.Sequential(
        ConvBlock(num_modalities * channels, channels, kernel_size=1, prenorm=True),
        ConvBlock(channels, channels, kernel_size=3, prenorm=True),
        ConvBlock(channels, channels, kernel_size=1, prenorm=True),
    )


class ConvFusionDecoder(nn.Module):
    """mmFormer's D_fuse: per level (deepest first) a conv fusion of the masked stack feeds the shared U-Net decoder;
    logit heads on the deepest fusion output and after every merge but the last give the deep supervision."""

    def __init__(self, channels: list[int], num_modalities: int, num_classes: int, padding_mode: str):
        super().__init__()
        self.decoder = UNetDecoder(channels, num_classes, padding_mode=padding_mode, prenorm=True)
        self.fusions = nn.ModuleList(_conv_fusion(num_modalities, c) for c in channels)
        self.deep_heads = nn.ModuleList(nn.Conv3d(c, num_classes, kernel_size=1) for c in channels[1:])

    def forward(self, stacks: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """stacks: per level ``[B, M*C_l, ...]`` (already masked; the deepest is the inter-modal map)."""
        deepest = len(stacks) - 1
        d = self.fusions[deepest](stacks[deepest])
        deep_logits = [self.deep_heads[deepest - 1](d)]
        for level in reversed(range(deepest)):
            d = self.decoder.merge(self.fusions[level](stacks[level]), self.decoder.up(d, level), level)
            if level > 0:
                deep_logits.insert(0, self.deep_heads[level - 1](d))
        return self.decoder.head(d), deep_logits


class MMFormer(nn.Module):
    divisor = DOWNSAMPLING

    def __init__(self, config: MMFormerConfig):
        super().__init__()
        self.config = config
        crop = (config.crop_size,) * 3 if isinstance(config.crop_size, int) else tuple(config.crop_size)
        if len(crop) != 3 or any(s % DOWNSAMPLING for s in crop):
            raise ValueError(f"crop_size {config.crop_size} must be 3 sizes divisible by {DOWNSAMPLING}")
        self.token_grid = tuple(s // DOWNSAMPLING for s in crop)
        num_tokens = math.prod(self.token_grid)
        m, dim = config.num_modalities, config.transformer_dim
        channels = level_channels(config.base_channels, NUM_LEVELS)
        deep = channels[-1]

        self.encoders = nn.ModuleList(
            ModalityEncoder(config.base_channels, NUM_LEVELS, padding_mode=config.padding_mode, prenorm=True)
            for _ in range(m))
        self.token_projections = nn.ModuleList(nn.Conv3d(deep, dim, kernel_size=1) for _ in range(m))
        self.position_embeddings = nn.ParameterList(nn.Parameter(torch.zeros(1, num_tokens, dim)) for _ in range(m))
        self.intra_transformers = nn.ModuleList(
            Transformer(dim, config.depth, config.heads, config.mlp_dim, config.dropout) for _ in range(m))
        self.inter_transformer = Transformer(dim, config.depth, config.heads, config.mlp_dim, config.dropout)
        self.inter_projection = nn.Conv3d(m * dim, m * deep, kernel_size=1)
        if config.keep_unused_parameters:
            self.unused_decode_convs = nn.ModuleList(nn.Conv3d(dim, deep, kernel_size=1) for _ in range(m))
        self.fused_decoder = ConvFusionDecoder(channels, m, config.num_classes, config.padding_mode)
        self.separate_decoder = UNetDecoder(channels, config.num_classes, padding_mode=config.padding_mode,
                                            prenorm=True)
        init_conv_weights(self)  # Linear layers keep PyTorch's default init, position embeddings start at zero

    def _to_tokens(self, grid: torch.Tensor) -> torch.Tensor:
        """[B, D, gx, gy, gz] -> [B, G, D] in raster order."""
        return grid.flatten(2).transpose(1, 2)

    def _to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, G, D] -> [B, D, gx, gy, gz]."""
        return tokens.transpose(1, 2).unflatten(2, self.token_grid)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """CNN features per level ``[B, M, C_l, ...]`` and intra-modal transformer maps ``[B, M, D, gx, gy, gz]``."""
        if tuple(s // DOWNSAMPLING for s in x.shape[2:]) != self.token_grid:
            raise ValueError(f"mmFormer was built for a {tuple(g * DOWNSAMPLING for g in self.token_grid)} crop "
                             f"(token grid {self.token_grid}), got input {tuple(x.shape[2:])}")
        cnn = encode_modalities(self.encoders, x)
        intra = torch.stack([
            self._to_grid(transformer(self._to_tokens(projection(cnn[-1][:, j])), position))
            for j, (projection, position, transformer) in enumerate(
                zip(self.token_projections, self.position_embeddings, self.intra_transformers))], dim=1)
        return cnn, intra

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """CNN levels 1-4 ``[B, M, C_l, ...]`` and, last, the intra-modal maps ``[B, M, D, gx, gy, gz]``."""
        cnn, intra = self._encode(x)
        return cnn[:-1] + [intra]

    def _decode(self, features: list[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        *levels, intra = features
        b, m, dim = intra.shape[:3]
        intra = mask_modalities(intra, mask)
        tokens = torch.cat([self._to_tokens(intra[:, j]) for j in range(m)], dim=1)  # [B, M*G, D], modality-major
        tokens = self.inter_transformer(tokens, torch.cat(list(self.position_embeddings), dim=1))
        if self.config.fold_tokens_per_modality:  # Q2 fixed: each modality's tokens back to their own cells
            inter = torch.cat([self._to_grid(t) for t in tokens.chunk(m, dim=1)], dim=1)  # [B, M*D, g...]
        else:  # Q2 as published: a raw view of [B, M*G, D] as [B, gx, gy, gz, M*D]
            inter = tokens.reshape(b, *self.token_grid, m * dim).permute(0, 4, 1, 2, 3)
        stacks = [mask_modalities(f, mask).flatten(1, 2) for f in levels] + [self.inter_projection(inter)]
        return self.fused_decoder(stacks)

    def decode(self, features: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        return self._decode(features, mask)[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_input(x, mask, self.config.num_modalities, self.divisor)
        cnn, intra = self._encode(x)
        logits, deep_logits = self._decode(cnn[:-1] + [intra], mask)
        if not self.training:
            return logits
        return TrainOutput(
            fused_logits=logits,
            deep_supervision_logits=deep_logits,
            modality_logits=decode_each_modality(self.separate_decoder, cnn),  # level-5 CNN features, unmasked
        )

    def no_weight_decay_parameters(self) -> list[str]:
        return []  # the reference decays every parameter
