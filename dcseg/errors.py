"""Errors a stage reports as one clear line (kept free of heavy imports: every stage loads this)."""


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used (missing, corrupt, or from another model/config/data)."""
