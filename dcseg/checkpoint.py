"""The two file formats of a run, owned here: trained-model files (``models/<name>/model.pt``) and resumable
training checkpoints (``checkpoints/<name>/last.pt``).

Both are plain dicts of tensors and builtin types, always read with ``torch.load(weights_only=True)``: loading
never runs pickled code. A model file records how to rebuild the network (model name, width, config
overrides) and a fingerprint of what it was trained on (hash of the preprocessed data's manifest and split,
hash of the params); a file whose fingerprint does not match what the caller expects is refused with a message
that names the file and the differing fields.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from dcseg.io import atomic_path
from dcseg.errors import CheckpointError  # noqa: F401  (re-exported)
from dcseg.registry import build_model

FORMAT_VERSION = 1


def data_fingerprint(preprocessed_dir: str | Path) -> str:
    """Hash of the preprocessed dataset's manifest and split: changes whenever the data does."""
    d = Path(preprocessed_dir)
    h = hashlib.sha256()
    for rel in ("manifest.csv", "split/train.txt", "split/val.txt", "split/test.txt"):
        p = d / rel
        if not p.is_file():
            raise CheckpointError(f"{p} is missing; run the preprocess stage first")
        h.update(rel.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def save_atomic(obj: dict, path: str | Path) -> None:
    """torch.save through a temp file + rename: a kill never leaves a truncated file under ``path``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train the model first (dvc repro)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a dcseg-bench file of format version {FORMAT_VERSION}")
    return obj


# What every model file records: how to rebuild the network, its weights, and the identity of the run that trained it
# (the model, its Table 2 variant or None, the run's model options, the width table entry, the seed, the data).
MODEL_FIELDS = ("model", "variant", "options", "width", "overrides", "seed", "data_hash", "state_dict")


def check_fingerprint(obj: dict, expected: dict, path: str | Path) -> None:
    """Refuse a file whose recorded identity differs from ``expected`` on any given key."""
    diffs = [f"{k}: file has {obj[k]!r}, expected {v!r}" if k in obj else f"{k}: file has none, expected {v!r}"
             for k, v in expected.items() if k not in obj or _comparable(obj[k]) != _comparable(v)]
    if diffs:
        raise CheckpointError(f"{path} does not match this run ({'; '.join(diffs)}); it belongs to another "
                              "model, config or dataset. Delete it or retrain (dvc repro).")


def _comparable(value):
    """Tuples and lists compare alike (a record may have been written with either)."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def model_record(model_name: str, width: str, overrides: dict, model: nn.Module, variant: str | None = None,
                 options: dict | None = None, **identity) -> dict:
    """What a model file holds (``MODEL_FIELDS``): enough to rebuild the network, its weights and the training
    identity. ``options``: the run's own model options (an ablation variant's); ``overrides``: everything the
    network was built with (options plus, for mmFormer, the crop)."""
    return {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "variant": variant,
        "options": dict(options or {}),
        "width": width,
        "overrides": dict(overrides),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **identity,
    }


def checkpoint_record(fingerprint: str, resolved: dict, step: int, model: nn.Module, optimiser, history: list,
                      epoch_losses: list[list[float]], device: torch.device) -> dict:
    """What a training checkpoint holds: everything a killed run needs to continue bitwise as if uninterrupted
    (weights, optimiser, RNG, the logged history and, per rank, the losses of the epoch under way) and the identity
    (``fingerprint``, and what ``auto`` resolved to) that decides whether a run may resume from it."""
    record = {"format_version": FORMAT_VERSION, "fingerprint": fingerprint, "resolved": dict(resolved), "step": step,
              "state_dict": model.state_dict(), "optimiser": optimiser.state_dict(), "torch_rng": torch.get_rng_state(),
              "history": list(history), "epoch_losses": list(epoch_losses)}
    if device.type == "cuda":  # dropout and sampling on the GPU draw from this one
        record["cuda_rng"] = torch.cuda.get_rng_state(device)
    return record


def restore_checkpoint(record: dict, model: nn.Module, optimiser, device: torch.device, rank: int = 0
                       ) -> tuple[int, list, list]:
    """Load a checkpoint's state into ``model`` and ``optimiser`` and the RNG; returns (step, history, this rank's
    losses of the epoch under way)."""
    model.load_state_dict(record["state_dict"])
    optimiser.load_state_dict(record["optimiser"])
    torch.set_rng_state(record["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in record:
        torch.cuda.set_rng_state(record["cuda_rng"], device)
    by_rank = record.get("epoch_losses", [])
    losses = by_rank[rank] if rank < len(by_rank) else []
    return int(record["step"]), list(record["history"]), list(losses)


def load_model(path: str | Path, expected: dict | None = None) -> tuple[nn.Module, dict]:
    """Rebuild and load a trained model (eval mode). ``expected``: identity fields that must match, e.g.
    ``{"model": "rfnet", "data_hash": ...}``. Returns (model, the file's metadata without the weights)."""
    obj = load_file(path)
    missing = [f for f in MODEL_FIELDS if f not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {missing} that a model file records; it is an older or "
                              "hand-made file. Retrain it (dvc repro).")
    if expected:
        check_fingerprint(obj, expected, path)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in obj["overrides"].items()}
    model = build_model(obj["model"], width=obj["width"], **overrides)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit model {obj['model']!r} with profile "
                              f"{obj['width']!r} and overrides {obj['overrides']}: {e}") from e
    model.eval()
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return model, meta
