"""The one registry of the benchmark's models: name + width -> a network.

    build_model("dcseg" | "rfnet" | "mmformer", width="paper", **options)

It sits above both homes of the networks (``dcseg.models`` for DC-Seg and the shared blocks, ``baselines/`` for
RFNet and mmFormer, which build on those blocks), so every import runs one way: registry -> models and baselines ->
blocks.

Every model has the same interface: ``model(x, mask)`` with x float ``[B, M, X, Y, Z]`` (modalities in
``dcseg.data.brats.MODALITIES`` order) and mask bool ``[B, M]`` (True = available). Eval mode returns class logits
``[B, K, X, Y, Z]``; train mode a ``TrainOutput`` for ``dcseg.losses.total_loss``. ``model.encode(x)`` and
``model.decode(features, mask)`` split the eval forward so that the encoders run once for all modality subsets.

Widths (``WIDTHS``; params key ``width``): "paper" = the reference widths, "cpu" = narrower networks that train on a
CPU (RFNet/DC-Seg base 8 with the light modality encoder; mmFormer base 8, transformer dim 128, MLP 512, 4 heads at
a 64^3 crop). ``options`` are fields of the model's config dataclass and win over the width. ``crop_size`` is
accepted for every model and used only by mmFormer, whose token grid follows the crop.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from baselines.mmformer import MMFormer, MMFormerConfig
from baselines.rfnet import RFNet, RFNetConfig
from dcseg.models import MODEL_NAMES
from dcseg.models.dcseg import DCSeg, DCSegConfig

CLASSES = {"dcseg": (DCSeg, DCSegConfig), "rfnet": (RFNet, RFNetConfig), "mmformer": (MMFormer, MMFormerConfig)}
assert tuple(CLASSES) == MODEL_NAMES

WIDTHS: dict[str, dict[str, dict]] = {
    "paper": {"dcseg": {}, "rfnet": {}, "mmformer": {}},
    "cpu": {
        # base 8; the light E_mod is the equations' (implementation="official" ignores it: its E_mod and D_rec
        # widths are multiples of the base, dcseg.models.official.official_widths, so base 8 halves them)
        "dcseg": {"base_channels": 8, "modality_encoder_widths": (8, 16, 32, 32, 32)},
        "rfnet": {"base_channels": 8},
        "mmformer": {"base_channels": 8, "transformer_dim": 128, "mlp_dim": 512, "heads": 4, "crop_size": 64},
    },
}


def _classes(name: str):
    if name not in CLASSES:
        raise KeyError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    return CLASSES[name]


def build_model(name: str, width: str = "paper", **options) -> nn.Module:
    """Build ``name`` at ``width`` (a ``WIDTHS`` entry) with the given config options."""
    model_class, config_class = _classes(name)
    if width not in WIDTHS:
        raise KeyError(f"unknown width {width!r}; expected one of {tuple(WIDTHS)}")
    values = {**WIDTHS[width][name], **options}
    fields = set(model_option_names(name))
    if "crop_size" not in fields:
        values.pop("crop_size", None)
    unknown = set(values) - fields
    if unknown:
        raise TypeError(f"{name} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    return model_class(config_class(**values))


def model_option_names(name: str) -> tuple[str, ...]:
    """The options ``build_model(name, ...)`` accepts: the fields of the model's config dataclass."""
    return tuple(f.name for f in dataclasses.fields(_classes(name)[1]))


def model_divisor(name: str) -> int:
    """What every spatial size of ``name``'s input must be divisible by (its downsampling factor)."""
    return _classes(name)[0].divisor


__all__ = ["CLASSES", "WIDTHS", "build_model", "model_divisor", "model_option_names"]
