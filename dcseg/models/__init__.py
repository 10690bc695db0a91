"""Models of the benchmark and the one registry that builds them.

    build_model("dcseg" | "rfnet" | "mmformer", profile="paper", **overrides)

Every model has the same interface: ``model(x, mask)`` with x float ``[B, M, X, Y, Z]`` (modalities in
``dcseg.data.brats.MODALITIES`` order) and mask bool ``[B, M]`` (True = available). Eval mode returns class logits
``[B, K, X, Y, Z]``; train mode a ``TrainOutput`` for ``dcseg.losses.total_loss``. ``model.encode(x)`` and
``model.decode(features, mask)`` split the eval forward so that the encoders run once for all modality subsets.

Profiles are the widths used for planning: "paper" = the reference widths, "cpu" = narrower networks that train on a
CPU (RFNet/DC-Seg base 8 with the light modality encoder; mmFormer base 8, transformer dim 128, MLP 512, 4 heads at
a 64^3 crop). ``overrides`` are fields of the model's config dataclass and win over the profile. ``crop_size`` is
accepted for every model and used only by mmFormer, whose token grid follows the crop.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from dcseg.models.outputs import TrainOutput

MODEL_NAMES = ("dcseg", "rfnet", "mmformer")

PROFILES: dict[str, dict[str, dict]] = {
    "paper": {"dcseg": {}, "rfnet": {}, "mmformer": {}},
    "cpu": {
        "dcseg": {"base_channels": 8, "modality_encoder_widths": (8, 16, 32, 32, 32)},
        "rfnet": {"base_channels": 8},
        "mmformer": {"base_channels": 8, "transformer_dim": 128, "mlp_dim": 512, "heads": 4, "crop_size": 64},
    },
}


def _model_classes(name: str):
    # imported here: the model files import the blocks of this package
    if name == "dcseg":
        from dcseg.models.dcseg import DCSeg, DCSegConfig
        return DCSeg, DCSegConfig
    if name == "rfnet":
        from baselines.rfnet import RFNet, RFNetConfig
        return RFNet, RFNetConfig
    if name == "mmformer":
        from baselines.mmformer import MMFormer, MMFormerConfig
        return MMFormer, MMFormerConfig
    raise KeyError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def build_model(name: str, profile: str = "paper", **overrides) -> nn.Module:
    """Build ``name`` with the widths of ``profile`` and the given config overrides."""
    model_class, config_class = _model_classes(name)
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; expected one of {tuple(PROFILES)}")
    options = {**PROFILES[profile][name], **overrides}
    fields = {f.name for f in dataclasses.fields(config_class)}
    if "crop_size" not in fields:
        options.pop("crop_size", None)
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"{name} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    return model_class(config_class(**options))


def model_divisor(name: str) -> int:
    """What every spatial size of ``name``'s input must be divisible by (its downsampling factor)."""
    return _model_classes(name)[0].divisor


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODEL_NAMES", "PROFILES", "TrainOutput", "build_model", "count_parameters", "model_divisor"]
