"""Preprocessing: RFNet's recipe with its off-by-one fixed, and the case store (``docs/reference.md``
§Preprocessing; the quirk labels are defined in §Quirks).

Per case:
1. bounding box of voxels that are non-zero in any modality, **last non-zero slice included** (RFNet's
   ``[min:max)`` slice drops it, quirk Q5);
2. widen the box to ``min_size`` per axis inside the volume (centred, clamped to the volume; RFNet does not
   clamp the upper bound, quirk Q4), zero-padding only where the volume itself is smaller than ``min_size``;
3. z-score each modality with the mean and population std of the brain voxels (any modality non-zero),
   applied to all voxels as RFNet does, so the background becomes -mean/std;
4. BraTS labels {0, 1, 2, 4} -> {0, 1, 2, 3}.

Store: ``<out>/<case>_image.npy`` (float32 [4, X, Y, Z]) and ``<out>/<case>_label.npy`` (uint8 [X, Y, Z]),
plain .npy so training memory-maps them; ``manifest.csv`` with shape, crop box, padding, spacing and the
voxel count per label. Every file is written to a temp name and renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcseg.io import atomic_path
from dcseg.data.errors import DataError

# Label values after preprocessing: BraTS 4 (enhancing) becomes 3 so labels are contiguous class indices.
LABEL_NAMES = ("background", "ncr_net", "edema", "enhancing")
BRATS_TO_CLASS = np.array([0, 1, 2, 0, 3], dtype=np.uint8)  # index = BraTS label (3 never occurs)
KEEP_LABELS = np.array([0, 1, 2], dtype=np.uint8)  # WMH: 0 background, 1 WMH, 2 other pathology (ignored), as stored


@dataclass(frozen=True)
class CropInfo:
    lo: tuple[int, int, int]          # crop start in the original grid (inclusive)
    hi: tuple[int, int, int]          # crop end in the original grid (exclusive)
    pad_before: tuple[int, int, int]  # zero padding added before the crop, per axis
    pad_after: tuple[int, int, int]


def nonzero_bbox(image: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Bounding box ``[lo, hi)`` of voxels non-zero in any channel of ``image [C, X, Y, Z]``; ``hi`` is one past
    the last non-zero index, so the last non-zero slice is inside the box."""
    nz = (image != 0).any(axis=0)
    if not nz.any():
        raise DataError("image has no non-zero voxel; expected a brain")
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(nz.any(axis=other))
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    return tuple(lo), tuple(hi)


def widen_box(lo, hi, shape, min_size) -> CropInfo:
    """Widen ``[lo, hi)`` symmetrically to at least ``min_size`` per axis, staying inside ``shape``; where the
    volume is smaller than ``min_size`` the rest is zero padding (split evenly, the odd voxel after)."""
    new_lo, new_hi, pad_b, pad_a = [], [], [], []
    for l, h, s, m in zip(lo, hi, shape, min_size):
        need = max(m - (h - l), 0)
        l2 = l - need // 2
        h2 = h + (need - need // 2)
        # Shift back inside the volume, then clamp (only clamps when the volume itself is too small).
        if l2 < 0:
            h2, l2 = h2 - l2, 0
        if h2 > s:
            l2, h2 = max(l2 - (h2 - s), 0), s
        missing = max(m - (h2 - l2), 0)
        new_lo.append(l2)
        new_hi.append(h2)
        pad_b.append(missing // 2)
        pad_a.append(missing - missing // 2)
    return CropInfo(tuple(new_lo), tuple(new_hi), tuple(pad_b), tuple(pad_a))


def zscore_brain(image: np.ndarray, brain: np.ndarray, where: str = "", names=None) -> np.ndarray:
    """Z-score each channel with the mean and population std over ``brain`` voxels, applied to all voxels.
    ``names``: what to call each channel in an error (its file), default ``channel k``."""
    out = np.empty_like(image, dtype=np.float32)
    for k in range(image.shape[0]):
        vals = image[k][brain].astype(np.float64)
        mean, std = vals.mean(), vals.std()
        if not np.isfinite(std) or std <= 0:
            name = names[k] if names is not None else f"channel {k}"
            raise DataError(f"{where}{name} is constant over the brain (all {mean:g}, std {std:g}); expected "
                            "varying intensities to z-score")
        out[k] = ((image[k] - mean) / std).astype(np.float32)
    return out


def preprocess_case(image: np.ndarray, seg: np.ndarray, min_size=(0, 0, 0), where: str = "", names=None,
                    relabel: np.ndarray = BRATS_TO_CLASS):
    """Crop, pad, normalise and relabel one case. Returns (image float32 [M, ...], label uint8 [...], CropInfo).
    ``where`` prefixes and ``names`` (one per channel, e.g. the file) name the case in errors; ``relabel`` maps a
    stored label value (index) to its class (BraTS: 4 -> 3; WMH: ``KEEP_LABELS``, 2 staying the ignored label)."""
    lo, hi = nonzero_bbox(image)
    info = widen_box(lo, hi, image.shape[1:], min_size)
    sl = tuple(slice(a, b) for a, b in zip(info.lo, info.hi))
    img = image[(slice(None),) + sl]
    lab = relabel[seg[sl]]
    pads = list(zip(info.pad_before, info.pad_after))
    if any(p != (0, 0) for p in pads):
        # Pad the raw intensities with 0 (background) before normalising, so padding and real background
        # get the same normalised value.
        img = np.pad(img, [(0, 0)] + pads)
        lab = np.pad(lab, pads)
    brain = (img != 0).any(axis=0)
    img = zscore_brain(img, brain, where, names)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab), info


# ------------------------------------------------------------------------------------------- case store


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def image_path(preprocessed_dir: str | Path, case_id: str) -> Path:
    return Path(preprocessed_dir) / f"{case_id}_image.npy"


def label_path(preprocessed_dir: str | Path, case_id: str) -> Path:
    return Path(preprocessed_dir) / f"{case_id}_label.npy"


def save_case(preprocessed_dir: str | Path, case_id: str, image: np.ndarray, label: np.ndarray) -> None:
    _save_npy_atomic(image_path(preprocessed_dir, case_id), image.astype(np.float32, copy=False))
    _save_npy_atomic(label_path(preprocessed_dir, case_id), label.astype(np.uint8, copy=False))


def load_case(preprocessed_dir: str | Path, case_id: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A preprocessed case: image float32 ``[M, X, Y, Z]`` (M modalities: BraTS 4, WMH 2), label uint8 ``[X, Y, Z]``
    (BraTS {0, 1, 2, 3}; WMH {0, 1, 2}).

    With ``mmap`` (the default) the arrays are read-only memory maps, so a training crop reads only its voxels.
    """
    paths = image_path(preprocessed_dir, case_id), label_path(preprocessed_dir, case_id)
    for p in paths:
        if not p.is_file():
            raise DataError(f"case {case_id}: preprocessed file {p} is missing; run the preprocess stage "
                            "(dvc repro preprocess)")
    mode = "r" if mmap else None
    image, label = (np.load(p, mmap_mode=mode, allow_pickle=False) for p in paths)
    if image.ndim != 4 or image.shape[1:] != label.shape or image.dtype != np.float32 or label.dtype != np.uint8:
        raise DataError(f"case {case_id}: {paths[0].name} {image.shape} {image.dtype} and {paths[1].name} "
                        f"{label.shape} {label.dtype} do not match; expected float32 [M, X, Y, Z] and uint8 [X, Y, Z]")
    return image, label
