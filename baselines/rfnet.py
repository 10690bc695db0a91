"""RFNet (Ding et al., ICCV 2021): region-aware fusion network for incomplete multi-modal brain tumour segmentation.

Follows dyh127/RFNet @ 1e475fa5 (models.py, layers.py), as read and measured in ``docs/reference.md`` §RFNet;
written from that reading, no code copied. At the reference width (base 16, 4 modalities, 4 classes) it has
exactly 8,984,960 trainable parameters, like the reference.

Composition: one ``ModalityEncoder`` per modality (4 levels, post-norm), the ``RegionAwareFusedDecoder`` (probability
-map generators + region-aware fusion at every level) on the masked modality stacks, and one weight-shared
``UNetDecoder`` (D_sep) applied to every modality's own features.

Interface: ``model(x, mask)``, x ``[B, M, X, Y, Z]`` with X, Y, Z divisible by 8, mask bool ``[B, M]``. Eval mode:
class logits ``[B, K, X, Y, Z]``. Train mode: a ``TrainOutput``. ``encode(x)`` / ``decode(features, mask)`` split the
eval forward so that the encoders run once for all 15 modality subsets.

Reference quirks (labels defined in ``docs/reference.md`` §Quirks):
- Q1 padding: ``padding_mode`` option, default "zeros" = what the published PyTorch 1.2 runs did; "reflect" = what the
  code asks for.
- Q7 loss in probability space: the model returns logits; ``dcseg.losses`` applies the softmax and reproduces the
  clamped weighted cross-entropy and batch-pooled Dice (numerically the same loss).
- Q11 reproduced: the probability maps are detached before fusion (``detach_probability_maps=True``); encoders and
  D_sep see all modalities whatever the mask; a missing modality is zeroed at feature level.
- Q13 legacy APIs: not used; train/eval outputs follow ``module.training`` instead of an ``is_training`` flag.
- Q14 fixed: the number of modalities is a parameter (``num_modalities``).
- Q2, Q3, Q4, Q9 concern mmFormer only (see ``baselines.mmformer``).
- Q5, Q6, Q12 (preprocessing, augmentation, split) belong to ``dcseg.data``; Q8 (evaluation) to the evaluation code;
  Q10 (CLI defaults vs job.sh: lr 2e-4, 20-epoch fuse warm-up, batch 2) and the warm-up itself to the trainer, which
  passes the fuse weight to ``dcseg.losses.total_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcseg.data.brats import MODALITIES
from dcseg.models.blocks import check_input, init_conv_weights
from dcseg.models.decoders import UNetDecoder, decode_each_modality
from dcseg.models.encoders import ModalityEncoder, level_channels
from dcseg.models.fusion import RegionAwareFusedDecoder, RegionAwareFusionModel
from dcseg.models.outputs import TrainOutput

NUM_LEVELS = 4


@dataclass
class RFNetConfig:
    num_modalities: int = len(MODALITIES)
    num_classes: int = 4
    base_channels: int = 16  # reference width; the CPU profile uses 8
    padding_mode: str = "zeros"  # Q1
    detach_probability_maps: bool = True  # Q11


class RFNet(RegionAwareFusionModel):
    divisor = 2 ** (NUM_LEVELS - 1)  # spatial sizes must be divisible by this

    def __init__(self, config: RFNetConfig):
        super().__init__()
        self.config = config
        channels = level_channels(config.base_channels, NUM_LEVELS)
        self.encoders = nn.ModuleList(
            ModalityEncoder(config.base_channels, NUM_LEVELS, padding_mode=config.padding_mode)
            for _ in range(config.num_modalities))
        self.fused_decoder = RegionAwareFusedDecoder(channels, config.num_modalities, config.num_classes,
                                                     padding_mode=config.padding_mode,
                                                     detach_probability_maps=config.detach_probability_maps)
        self.separate_decoder = UNetDecoder(channels, config.num_classes, padding_mode=config.padding_mode)
        init_conv_weights(self)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_input(x, mask, self.config.num_modalities, self.divisor)
        features = self.encode(x)
        if not self.training:
            return self.decode(features, mask)
        fused = self.fused_decoder(features, mask)
        return TrainOutput(
            fused_logits=fused.logits,
            deep_supervision_logits=fused.probability_map_logits,
            modality_logits=decode_each_modality(self.separate_decoder, features),
        )

    def no_weight_decay_parameters(self) -> list[str]:
        return []  # the reference decays every parameter
