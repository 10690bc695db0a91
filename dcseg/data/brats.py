"""BraTS 2020 reader: one case directory -> (image [4, X, Y, Z] float32, seg [X, Y, Z] uint8, affine 4x4).

Layout (BraTS 2020 training release, also written by the phantom):
``BraTS20_Training_NNN/BraTS20_Training_NNN_{flair,t1ce,t1,t2,seg}.nii.gz`` (or ``.nii``, as in the Kaggle copy).

Every problem with the input raises :class:`dcseg.data.DataError` naming the case and the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from dcseg.data.errors import DataError

# Channel order everywhere in the project (RFNet / mmFormer order: 0 = FLAIR, 1 = T1ce, 2 = T1, 3 = T2).
MODALITIES: tuple[str, ...] = ("flair", "t1ce", "t1", "t2")

# BraTS 2020 label values: 0 background, 1 NCR/NET, 2 edema, 4 enhancing tumour.
BRATS_LABELS: tuple[int, ...] = (0, 1, 2, 4)

# Known real-data quirk: in the official BraTS 2020 training release the segmentation of case 355 is
# named after the scan, not the case.
SEG_NAME_QUIRKS: dict[str, str] = {"BraTS20_Training_355": "W39_1998.09.19_Segm.nii"}

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def find_case_file(case_dir: Path, kind: str) -> Path:
    """Path of ``<case>_<kind>.nii.gz`` / ``.nii`` in ``case_dir`` (kind: a modality or ``seg``)."""
    case = case_dir.name
    candidates = [case_dir / f"{case}_{kind}{suffix}" for suffix in NIFTI_SUFFIXES]
    if kind == "seg" and case in SEG_NAME_QUIRKS:
        candidates.append(case_dir / SEG_NAME_QUIRKS[case])
    found = [p for p in candidates if p.is_file()]
    if not found:
        names = " or ".join(p.name for p in candidates)
        raise DataError(f"case {case}: missing {kind} file: expected {names} in {case_dir}")
    if len(found) > 1:
        raise DataError(f"case {case}: ambiguous {kind} file: found {', '.join(p.name for p in found)}; keep one")
    return found[0]


def _load_nifti(path: Path, case: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read the full voxel array (as stored, scaled by scl_slope/inter if set), affine and voxel size."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as e:
        raise DataError(f"case {case}: cannot read {path.name} ({path}): {type(e).__name__}: {e}; "
                        "expected a complete NIfTI-1 file") from e
    if data.ndim != 3:
        raise DataError(f"case {case}: {path.name} has shape {data.shape}; expected a 3D volume")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise DataError(f"case {case}: {path.name} has dtype {data.dtype}; expected a real numeric type")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, np.asarray(img.affine, dtype=np.float64), zooms


def read_case(case_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one BraTS case: image float32 ``[4, X, Y, Z]`` in :data:`MODALITIES` order, seg uint8 ``[X, Y, Z]``
    with labels in {0, 1, 2, 4}, and the 4x4 affine of the FLAIR file.

    Raises :class:`DataError` for a missing, unreadable or truncated file, shapes that differ between files,
    NaN/inf voxels, label values outside {0, 1, 2, 4} or non-integral labels, and an all-zero brain.
    """
    case_dir = Path(case_dir)
    case = case_dir.name
    if not case_dir.is_dir():
        raise DataError(f"case {case}: {case_dir} is not a directory; expected a BraTS case folder")

    channels = []
    shape = affine = None
    for mod in MODALITIES:
        path = find_case_file(case_dir, mod)
        data, aff, _ = _load_nifti(path, case)
        if shape is None:
            shape, affine, first = data.shape, aff, path.name
        elif data.shape != shape:
            raise DataError(f"case {case}: {path.name} has shape {data.shape} but {first} has {shape}; "
                            "expected all modalities and the seg on one voxel grid")
        data = data.astype(np.float32)
        if not np.isfinite(data).all():
            n = int((~np.isfinite(data)).sum())
            raise DataError(f"case {case}: {path.name} has {n} NaN/inf voxels; expected finite intensities")
        channels.append(data)
    image = np.stack(channels)

    seg_path = find_case_file(case_dir, "seg")
    seg_raw, _, _ = _load_nifti(seg_path, case)
    if seg_raw.shape != shape:
        raise DataError(f"case {case}: {seg_path.name} has shape {seg_raw.shape} but {first} has {shape}; "
                        "expected the seg on the image grid")
    seg = labels_to_uint8(seg_raw, f"case {case}: {seg_path.name}")

    if not (image != 0).any():
        raise DataError(f"case {case}: all four modalities are zero everywhere (all-zero brain); "
                        f"expected a skull-stripped brain with non-zero voxels ({case_dir})")
    return image, seg, affine


def labels_to_uint8(seg: np.ndarray, where: str) -> np.ndarray:
    """Validate BraTS labels (integral values in {0, 1, 2, 4}, any numeric dtype) and return them as uint8."""
    if np.issubdtype(seg.dtype, np.floating):
        if not np.isfinite(seg).all():
            raise DataError(f"{where}: NaN/inf in the segmentation; expected integer labels {BRATS_LABELS}")
        if (seg != np.round(seg)).any():
            bad = np.unique(seg[seg != np.round(seg)])[:5]
            raise DataError(f"{where}: non-integral label values {bad.tolist()}; expected integers {BRATS_LABELS}")
    values = np.unique(seg)
    unexpected = [v for v in values.tolist() if v not in BRATS_LABELS]
    if unexpected:
        raise DataError(f"{where}: label values {unexpected} outside {set(BRATS_LABELS)}; expected BraTS labels "
                        "0 background, 1 NCR/NET, 2 edema, 4 enhancing tumour")
    return seg.astype(np.uint8)


def list_cases(root: str | Path) -> list[str]:
    """Sorted case ids (folder names holding a FLAIR file) under a BraTS root."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; expected a folder of BraTS case folders "
                        "(set data.root in params.yaml)")
    cases = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and any((p / f"{p.name}_flair{s}").is_file() for s in NIFTI_SUFFIXES))
    if not cases:
        raise DataError(f"data root {root} holds no BraTS case folders; expected <root>/<case>/<case>_flair.nii.gz")
    return cases
