"""DC-Seg and the blocks every model shares (RFNet and mmFormer live in ``baselines/`` and build on these blocks).

``dcseg.registry.build_model`` builds any of the three by name; this package only names them (``MODEL_NAMES``) and
holds what they have in common: the blocks, encoders, decoders, fusion and the ``TrainOutput`` of train mode.
"""

from __future__ import annotations

from torch import nn

from dcseg.experiments import MAIN_MODELS as MODEL_NAMES
from dcseg.models.outputs import TrainOutput


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODEL_NAMES", "TrainOutput", "count_parameters"]
