"""BraTS 2020 reader: one case directory -> (image [4, X, Y, Z] float32, seg [X, Y, Z] uint8, affine 4x4).

Layout (BraTS 2020 training release, also written by the phantom):
``BraTS20_Training_NNN/BraTS20_Training_NNN_{flair,t1ce,t1,t2,seg}.nii.gz`` (or ``.nii``, as in the Kaggle copy).

Every problem with the input raises :class:`dcseg.data.DataError` naming the case and the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcseg.data.errors import DataError
from dcseg.data.nifti import NIFTI_SUFFIXES, check_grid, finite_intensities, integer_labels, is_nifti, load_nifti

# Channel order everywhere in the project (RFNet / mmFormer order: 0 = FLAIR, 1 = T1ce, 2 = T1, 3 = T2).
MODALITIES: tuple[str, ...] = ("flair", "t1ce", "t1", "t2")

# BraTS 2020 label values: 0 background, 1 NCR/NET, 2 edema, 4 enhancing tumour.
BRATS_LABELS: tuple[int, ...] = (0, 1, 2, 4)

# Known real-data quirk: in the official BraTS 2020 training release the segmentation of case 355 is
# named after the scan, not the case.
SEG_NAME_QUIRKS: dict[str, str] = {"BraTS20_Training_355": "W39_1998.09.19_Segm.nii"}



def find_case_file(case_dir: Path, kind: str) -> Path:
    """Path of ``<case>_<kind>.nii.gz`` / ``.nii`` in ``case_dir`` (kind: a modality or ``seg``). A missing file
    fails naming the paths looked for and any near miss found instead (another letter case, another prefix)."""
    case = case_dir.name
    candidates = [case_dir / f"{case}_{kind}{suffix}" for suffix in NIFTI_SUFFIXES]
    if kind == "seg" and case in SEG_NAME_QUIRKS:
        candidates.append(case_dir / SEG_NAME_QUIRKS[case])
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise DataError(f"case {case}: missing {kind} file: expected {' or '.join(map(str, candidates))}"
                        f"{_near_miss(case_dir, kind)}")
    if len(found) > 1:
        raise DataError(f"case {case}: ambiguous {kind} file: found {', '.join(p.name for p in found)}; keep one")
    return found[0]


def _kind_prefix(name: str, kind: str) -> str | None:
    """``X`` when ``name`` is ``X_<kind>.nii.gz`` / ``.nii`` in any letter case, else None."""
    for suffix in NIFTI_SUFFIXES:
        end = f"_{kind}{suffix}"
        if name.lower().endswith(end):
            return name[: -len(end)]
    return None


def _near_miss(case_dir: Path, kind: str) -> str:
    """What ``case_dir`` holds instead of its ``kind`` file, as the tail of the missing-file error ('' if nothing)."""
    case = case_dir.name
    for p in sorted(case_dir.iterdir()):
        prefix = _kind_prefix(p.name, kind)
        if prefix is None:
            continue
        if prefix.lower() == case.lower():
            return f"; found {p.name}, which differs in letter case (file names are case-sensitive)"
        return (f"; found {p.name}, whose prefix {prefix} is not the folder name {case} (a case folder must be "
                "named after its files' prefix)")
    return ""


def check_case_folders(root: Path, cases) -> None:
    """A case without a folder of its name, whose files sit in a folder of another name (or letter case), fails
    naming both; cases missing altogether are left to the split check, which lists them all."""
    missing = [c for c in cases if not (root / c).is_dir()]
    if not missing:
        return
    flair_of = {}  # lower-case file prefix -> a FLAIR file carrying it
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            prefix = _kind_prefix(f.name, "flair")
            if prefix is not None:
                flair_of.setdefault(prefix.lower(), f)
    for c in missing:
        if c.lower() in flair_of:
            f = flair_of[c.lower()]
            raise DataError(f"case {c}: no folder {root / c}; found {f}: expected the case folder to be named "
                            f"after its files' prefix ({c})")


def read_case(case_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one BraTS case: image float32 ``[4, X, Y, Z]`` in :data:`MODALITIES` order, seg uint8 ``[X, Y, Z]``
    with labels in {0, 1, 2, 4}, and the 4x4 affine all its files share.

    Raises :class:`DataError` for a missing, unreadable or truncated file, files not on one grid (shape or
    affine), NaN/inf voxels, label values outside {0, 1, 2, 4} or non-integral labels, and an all-zero brain.
    """
    case_dir = Path(case_dir)
    case = case_dir.name
    if not case_dir.is_dir():
        raise DataError(f"case {case}: {case_dir} is not a directory; expected a BraTS case folder")

    channels = []
    grid = None  # (file name, shape, affine) of the first modality: every other file must match it
    for mod in MODALITIES:
        path = find_case_file(case_dir, mod)
        data, affine = load_nifti(path, f"case {case}")
        grid = grid or (path.name, data.shape, affine)
        check_grid(f"case {case}", path.name, data.shape, affine, *grid)
        channels.append(finite_intensities(data, f"case {case}", path.name))
    image = np.stack(channels)

    seg_path = find_case_file(case_dir, "seg")
    seg_raw, seg_affine = load_nifti(seg_path, f"case {case}")
    check_grid(f"case {case}", seg_path.name, seg_raw.shape, seg_affine, *grid)
    seg = labels_to_uint8(seg_raw, f"case {case}: {seg_path.name}")

    if not (image != 0).any():
        raise DataError(f"case {case}: all four modalities are zero everywhere (all-zero brain); "
                        f"expected a skull-stripped brain with non-zero voxels ({case_dir})")
    return image, seg, grid[2]


def labels_to_uint8(seg: np.ndarray, where: str) -> np.ndarray:
    """Validate BraTS labels (integral values in {0, 1, 2, 4}, any numeric dtype) and return them as uint8."""
    return integer_labels(seg, where, BRATS_LABELS, "BraTS labels 0 background, 1 NCR/NET, 2 edema, 4 enhancing tumour")


def list_cases(root: str | Path) -> list[str]:
    """Sorted case ids under a BraTS root: the folders holding a NIfTI file (hidden folders excepted). A folder
    whose files are misnamed is still listed, so reading it names the file looked for instead of the case
    vanishing from the list."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; expected a folder of BraTS case folders "
                        "(set data.root in params.yaml)")
    cases = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and any(is_nifti(f.name) for f in p.iterdir()))
    if not cases:
        raise DataError(f"data root {root} holds no BraTS case folders; expected <root>/<case>/<case>_flair.nii.gz")
    return cases
