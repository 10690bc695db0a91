"""Tiny model widths (shared by the training tests) and the tiny training run of tests/test_distributed.py and its
torchrun worker."""

from dcseg.data.sampler import AugmentConfig
from dcseg.training import TrainSettings

TINY = {
    "rfnet": {"base_channels": 4},
    "dcseg": {"base_channels": 4, "modality_encoder_widths": (4, 4, 4, 4, 4)},
    "mmformer": {"base_channels": 4, "transformer_dim": 16, "mlp_dim": 32, "heads": 2},
}


def ddp_settings(model: str) -> TrainSettings:
    crop = 32 if model == "mmformer" else 16
    return TrainSettings(model=model, width="cpu", overrides=TINY[model], steps=4, steps_per_epoch=2, batch_size=2,
                         crop=crop, checkpoint_every=2, log_every=1, precision="fp32", channels_last=False,
                         fuse_warmup_epochs=0, lr=1e-3, augment=AugmentConfig())
