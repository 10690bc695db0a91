"""NIfTI reading and the checks every reader applies (BraTS, WMH): complete files, 3-D real numbers, one grid per
case, integral labels from a known set. Errors are :class:`dcseg.data.DataError` prefixed with ``where`` (e.g.
``case BraTS20_Training_001``) and naming the file."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from dcseg.data.errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")

# The modalities and the labels of a case must lie on one voxel grid: the same shape and affines equal entry by
# entry within this many mm. NIfTI stores the affine in float32 (the qform as a quaternion), so one grid written by
# two tools differs by ~1e-5 mm at BraTS's 240 mm offsets; a thousandth of a voxel is far above that and far below
# any real misregistration.
AFFINE_TOLERANCE_MM = 1e-3
ONE_GRID = "expected every modality and the labels of a case on one grid"


def load_nifti(path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the full voxel array (as stored, scaled by scl_slope/inter if set) and the affine."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as e:
        raise DataError(f"{where}: cannot read {path.name} ({path}): {type(e).__name__}: {e}; "
                        "expected a complete NIfTI-1 file") from e
    if data.ndim != 3:
        raise DataError(f"{where}: {path.name} has shape {data.shape}; expected a 3D volume")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise DataError(f"{where}: {path.name} has dtype {data.dtype}; expected a real numeric type")
    return data, np.asarray(img.affine, dtype=np.float64)


def check_grid(where: str, name: str, shape, affine, ref_name: str, ref_shape, ref_affine) -> None:
    """File ``name`` must lie on the grid of ``ref_name``: the same shape and the same affine (we never resample)."""
    if shape != ref_shape:
        raise DataError(f"{where}: {name} has shape {shape} but {ref_name} has {ref_shape}; {ONE_GRID}")
    if np.abs(affine - ref_affine).max() > AFFINE_TOLERANCE_MM:
        this, ref = affine_difference(affine, ref_affine)
        raise DataError(f"{where}: {name} has {this} but {ref_name} has {ref}; {ONE_GRID} "
                        f"(affines equal within {AFFINE_TOLERANCE_MM:g} mm)")


def affine_difference(affine: np.ndarray, ref: np.ndarray) -> tuple[str, str]:
    """The first of voxel size, axis orientation and origin that differs, as (this, ref); else both affines."""
    views = (
        ("voxel size", lambda a: " x ".join(f"{v:.4g}" for v in nib.affines.voxel_sizes(a)) + " mm"),
        ("orientation", lambda a: "".join(nib.aff2axcodes(a))),
        ("origin", lambda a: "(" + ", ".join(f"{v:.4g}" for v in a[:3, 3]) + ") mm"),
    )
    for what, view in views:
        if view(affine) != view(ref):
            return f"{what} {view(affine)}", view(ref)
    return f"affine {np.round(affine[:3], 4).tolist()}", str(np.round(ref[:3], 4).tolist())


def finite_intensities(data: np.ndarray, where: str, name: str) -> np.ndarray:
    """``data`` as float32, refused when any voxel is NaN or inf."""
    data = data.astype(np.float32)
    if not np.isfinite(data).all():
        n = int((~np.isfinite(data)).sum())
        raise DataError(f"{where}: {name} has {n} NaN/inf voxels; expected finite intensities")
    return data


def integer_labels(seg: np.ndarray, where: str, allowed: tuple[int, ...], meaning: str) -> np.ndarray:
    """Validate a label map (integral values in ``allowed``, any numeric dtype; ``meaning`` says what they are in
    the error) and return it as uint8."""
    if np.issubdtype(seg.dtype, np.floating):
        if not np.isfinite(seg).all():
            raise DataError(f"{where}: NaN/inf in the segmentation; expected integer labels {allowed}")
        if (seg != np.round(seg)).any():
            bad = np.unique(seg[seg != np.round(seg)])[:5]
            raise DataError(f"{where}: non-integral label values {bad.tolist()}; expected integers {allowed}")
    values = np.unique(seg)
    unexpected = [v for v in values.tolist() if v not in allowed]
    if unexpected:
        raise DataError(f"{where}: label values {unexpected} outside {set(allowed)}; expected {meaning}")
    return seg.astype(np.uint8)


def is_nifti(name: str) -> bool:
    return name.lower().endswith(NIFTI_SUFFIXES)
