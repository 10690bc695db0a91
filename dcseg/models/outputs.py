"""What every model returns in train mode: everything ``dcseg.losses.total_loss`` needs.

In eval mode the models return only the fused class logits ``[B, K, X, Y, Z]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainOutput:
    fused_logits: torch.Tensor
    """[B, K, X, Y, Z]: D_fuse on the masked modalities (L_seg)."""
    deep_supervision_logits: list[torch.Tensor]
    """Per decoder level, shallow to deep, at native resolution [B, K, x_l, y_l, z_l]: RFNet's probability-map
    generators, mmFormer's decoder heads. The loss upsamples their softmax to full size, as the references do."""
    modality_logits: torch.Tensor | None = None
    """[B, M, K, X, Y, Z]: the weight-shared D_sep on each modality's own features, all modalities whatever the mask
    (L_reg). None when the model was built without D_sep."""
    anatomy: torch.Tensor | None = None
    """DC-Seg: [B, M, C, d, d, d] anatomical feature maps a_j of every modality, unmasked (L_ana)."""
    modality_vectors: torch.Tensor | None = None
    """DC-Seg: [B, M, D] modality vectors m_j (L_mod)."""
    reconstructions: torch.Tensor | None = None
    """DC-Seg: [B, M, X, Y, Z] D_rec_j(z, m_j) for every modality, missing ones included (L_rec)."""
    anatomy_temperature: torch.Tensor | None = None
    """DC-Seg: scalar t of L_ana (learnable by default)."""
    modality_temperature: torch.Tensor | None = None
    """DC-Seg: scalar t of L_mod."""
