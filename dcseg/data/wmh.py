"""WMH Segmentation Challenge reader: one scan folder -> (image [2, X, Y, Z] float32, labels [X, Y, Z] uint8, affine).

Layout (MICCAI 2017 WMH challenge, also written by ``dcseg.data.wmh_phantom``; ``docs/wmh.md``):
``<root>/<site>/<id>/pre/FLAIR.nii.gz``, ``<root>/<site>/<id>/pre/T1.nii.gz`` (T1 registered to FLAIR) and
``<root>/<site>/<id>/wmh.nii.gz`` (0 background, 1 WMH, 2 other pathology; ``.nii`` is accepted too). A site may
hold one level of scanner folders (``Amsterdam/GE3T/<id>``). A scan's id is its folder path below the root joined
by ``_`` (``Utrecht_0``, ``Amsterdam_GE3T_100``). Images keep their own grid, anisotropic slices included: nothing is
resampled.

Every problem with the input raises :class:`dcseg.data.DataError` naming the scan and the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcseg.data.errors import DataError
from dcseg.data.nifti import NIFTI_SUFFIXES, check_grid, finite_intensities, integer_labels, load_nifti
from dcseg.data.splits import SPLIT_NAMES, make_split

# Channel order of the two-modality path (the paper's Table 3 columns: FLAIR, T1).
WMH_MODALITIES: tuple[str, ...] = ("flair", "t1")
MODALITY_FILES = {"flair": "pre/FLAIR", "t1": "pre/T1"}  # + a NIfTI suffix
LABEL_FILE = "wmh"
WMH_LABELS: tuple[int, ...] = (0, 1, 2)
LABEL_MEANING = "WMH challenge labels 0 background, 1 WMH, 2 other pathology"

# Subjects per split: the paper's 31 training subjects less 5 held out for validation (training curves), and its 10
# test subjects (SAHZU-WMH: 60 / 20 scans of 31 / 10 subjects).
SUBJECT_PROPORTIONS = (26, 5, 10)
SUBJECTS_FILE = "subjects.csv"  # scan,subject: beside the split's train/val/test.txt


def scan_id(*parts: str) -> str:
    """``Utrecht``, ``0`` -> ``Utrecht_0``."""
    return "_".join(parts)


def _is_scan(folder: Path) -> bool:
    return (folder / "pre").is_dir() or any((folder / f"{LABEL_FILE}{s}").is_file() for s in NIFTI_SUFFIXES)


def _folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find(scan_dir: Path, stem: str, scan: str) -> Path:
    candidates = [scan_dir / f"{stem}{suffix}" for suffix in NIFTI_SUFFIXES]
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise DataError(f"scan {scan}: missing {stem} file: expected {' or '.join(map(str, candidates))}")
    if len(found) > 1:
        raise DataError(f"scan {scan}: ambiguous {stem} file: found {', '.join(p.name for p in found)}; keep one")
    return found[0]


def read_scan(scan_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one scan: image float32 ``[2, X, Y, Z]`` in :data:`WMH_MODALITIES` order, labels uint8 ``[X, Y, Z]`` in
    {0, 1, 2}, and the affine all three files share.

    Raises :class:`DataError` for a missing, unreadable or ambiguous file, files not on one grid, NaN/inf voxels,
    labels outside {0, 1, 2} or non-integral, and an all-zero FLAIR.
    """
    scan_dir = Path(scan_dir)
    scan = scan_id(scan_dir.parent.name, scan_dir.name)  # (a scanner level shows as its last two folders)
    if not scan_dir.is_dir():
        raise DataError(f"scan {scan}: {scan_dir} is not a directory; expected a WMH challenge scan folder")
    where = f"scan {scan}"
    channels, grid = [], None
    for modality in WMH_MODALITIES:
        path = _find(scan_dir, MODALITY_FILES[modality], scan)
        data, affine = load_nifti(path, where)
        name = f"{path.parent.name}/{path.name}"
        grid = grid or (name, data.shape, affine)
        check_grid(where, name, data.shape, affine, *grid)
        channels.append(finite_intensities(data, where, name))
    path = _find(scan_dir, LABEL_FILE, scan)
    raw, affine = load_nifti(path, where)
    check_grid(where, path.name, raw.shape, affine, *grid)
    labels = integer_labels(raw, f"{where}: {path.name}", WMH_LABELS, LABEL_MEANING)
    if not (channels[0] != 0).any():
        raise DataError(f"{where}: {grid[0]} is zero everywhere; expected a brain image ({scan_dir})")
    return np.stack(channels), labels, grid[2]


def list_scans(root: str | Path) -> dict[str, Path]:
    """Scan id -> folder for every ``<root>/<site>/<id>`` (or ``<root>/<site>/<scanner>/<id>``) that holds a ``pre``
    folder or a ``wmh`` file (hidden folders excepted), sorted by id. A folder with misnamed files is still listed,
    so reading it names the file looked for instead of the scan vanishing; a site folder holding neither scans nor
    scanner folders of scans is an error, not a silent gap."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; expected <root>/<site>/<id>/pre/FLAIR.nii.gz "
                        "(the WMH challenge layout; set the wmh data.root)")
    scans = {}
    for site in _folders(root):
        found = []
        for folder in _folders(site):
            if _is_scan(folder):
                found.append(folder)
            else:  # a scanner level (Amsterdam/GE3T/<id>)
                found += [scan for scan in _folders(folder) if _is_scan(scan)]
        if not found:
            raise DataError(f"site folder {site} holds no scan folders; expected {site}/<id>/pre/FLAIR.nii.gz or "
                            f"{site}/<scanner>/<id>/pre/FLAIR.nii.gz")
        for folder in found:
            sid = scan_id(*folder.relative_to(root).parts)
            if sid in scans:
                raise DataError(f"data root {root}: scan id {sid} names two folders ({scans[sid]}, {folder})")
            scans[sid] = folder
    if not scans:
        raise DataError(f"data root {root} holds no WMH scan folders; expected <root>/<site>/<id>/pre/FLAIR.nii.gz")
    return dict(sorted(scans.items()))


def subject_disjoint_split(subjects: dict[str, str], seed: int,
                           proportions=SUBJECT_PROPORTIONS) -> dict[str, list[str]]:
    """Scan ids per split from ``subjects`` (scan id -> subject id): subjects are split (seeded, ``proportions``),
    each taking all its scans, so no subject has scans on two sides."""
    by_subject: dict[str, list[str]] = {}
    for scan, subject in subjects.items():
        by_subject.setdefault(subject, []).append(scan)
    split = make_split(by_subject, seed, proportions)
    return {name: sorted(scan for subject in split[name] for scan in by_subject[subject]) for name in SPLIT_NAMES}


def format_subjects(subjects: dict[str, str]) -> str:
    """The ``subjects.csv`` text: ``scan,subject`` rows sorted by scan."""
    return "scan,subject\n" + "".join(f"{scan},{subject}\n" for scan, subject in sorted(subjects.items()))


def read_subjects(path: str | Path) -> dict[str, str]:
    """``subjects.csv`` back to scan id -> subject id; a malformed row names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; expected the scan -> subject map (scan,subject) of the split")
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != "scan,subject":
        raise DataError(f"{path}: header {lines[0] if lines else ''!r}; expected 'scan,subject'")
    subjects = {}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.strip().split(",")
        if len(parts) != 2 or not all(parts):
            raise DataError(f"{path}, line {number}: {line!r}; expected scan,subject")
        if parts[0] in subjects:
            raise DataError(f"{path}, line {number}: scan {parts[0]} listed twice")
        subjects[parts[0]] = parts[1]
    return subjects


def scan_subjects(root: str | Path) -> dict[str, str]:
    """Scan id -> subject id of the scans under ``root``: from ``<root>/subjects.csv`` where the data has one (the
    phantom: two time points per subject), else one subject per scan (the challenge's release). The map must name
    exactly the scans found."""
    scans = list_scans(root)
    path = Path(root) / SUBJECTS_FILE
    if not path.is_file():
        return {scan: scan for scan in scans}
    subjects, found = read_subjects(path), set(scans)
    if set(subjects) != found:
        missing, extra = sorted(found - set(subjects)), sorted(set(subjects) - found)
        raise DataError(f"{path} does not match the scans under {root}: scans without a subject {missing[:3]}, "
                        f"subjects' scans not found {extra[:3]}; expected one row per scan folder")
    return subjects


__all__ = ["WMH_MODALITIES", "WMH_LABELS", "read_scan", "list_scans", "scan_id", "subject_disjoint_split",
           "format_subjects", "read_subjects", "scan_subjects"]
