"""Build the preprocessed store of a dataset: every case of the split, read, checked and preprocessed."""

from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd

from dcseg.config import require
from dcseg.data.brats import MODALITIES, check_case_folders, find_case_file, list_cases, read_case
from dcseg.data.errors import DataError
from dcseg.data.manifest import MANIFEST
from dcseg.data.preprocess import BRATS_TO_CLASS, KEEP_LABELS, LABEL_NAMES, preprocess_case, save_case
from dcseg.data.wmh import MODALITY_FILES, WMH_MODALITIES, list_scans, read_scan
from dcseg.data.splits import SPLIT_NAMES, check_split_on_disk, read_split, write_split
from dcseg.io import atomic_dir, map_cases
from dcseg.tasks import TASK_FILE
from dcseg.validate import choice, int_list, text

# params data.source: the embedded phantom (written by the phantom stage) or the BraTS 2020 release, each read
# from <data.root>/<source>; for the WMH path (wmh/params.yaml) the WMH phantom or the MICCAI 2017 WMH challenge's
# training data.
BRATS_SOURCES = ("phantom", "brats2020")
WMH_SOURCES = ("wmh_phantom", "wmh2017")
SOURCES = BRATS_SOURCES + WMH_SOURCES


@dataclass(frozen=True)
class Reader:
    """How a source's cases are found, read and relabelled."""

    task: str                                    # dcseg.tasks name
    cases: Callable[[Path], dict[str, Path]]     # case id -> folder
    read: Callable[[Path], tuple]                # folder -> (image [M, ...], labels, affine)
    files: Callable[[Path], list[str]]           # the channel files of a case, for error messages
    relabel: np.ndarray
    label_names: tuple[str, ...]                 # the manifest's per-class voxel counts


def _brats_cases(raw_dir: Path) -> dict[str, Path]:
    return {c: raw_dir / c for c in list_cases(raw_dir)}


def _brats_files(case_dir: Path) -> list[str]:
    return [find_case_file(case_dir, mod).name for mod in MODALITIES]


def _wmh_files(scan_dir: Path) -> list[str]:
    return [MODALITY_FILES[m] for m in WMH_MODALITIES]


# (module-level functions, not lambdas: a Reader goes to the worker processes)
BRATS_READER = Reader("brats", _brats_cases, read_case, _brats_files, BRATS_TO_CLASS, LABEL_NAMES)
WMH_READER = Reader("wmh", list_scans, read_scan, _wmh_files, KEEP_LABELS, ("background", "wmh", "other_pathology"))
READERS = {"phantom": BRATS_READER, "brats2020": BRATS_READER, "wmh_phantom": WMH_READER, "wmh2017": WMH_READER}

# The BraTS 2020 archive unpacks into this folder; accept it one level below the data root.
BRATS_SUBFOLDERS = ("MICCAI_BraTS2020_TrainingData",)


def data_source(cfg, sources: tuple[str, ...] = SOURCES) -> str:
    """params ``data.source``, one of ``sources`` (a pipeline's own: ``BRATS_SOURCES``, ``WMH_SOURCES``; the shared
    preprocess stage takes any of :data:`SOURCES`)."""
    return choice("data.source", require(cfg, "data.source"), sources)


def data_root(cfg) -> Path:
    """params ``data.root``: the folder holding one folder per source."""
    return Path(text("data.root", require(cfg, "data.root")))


def min_size_param(cfg) -> tuple[int, int, int]:
    """params ``preprocess.min_size``: the smallest preprocessed shape, three voxel counts >= 1."""
    return int_list("preprocess.min_size", require(cfg, "preprocess.min_size"), 3, minimum=1)


def resolve_raw_dir(raw_dir: str | Path) -> Path:
    raw_dir = Path(raw_dir)
    for sub in BRATS_SUBFOLDERS:
        if (raw_dir / sub).is_dir():
            return raw_dir / sub
    return raw_dir


def _one(args) -> dict:
    reader, case_dir, out_dir, cid, min_size = args
    image, seg, affine = reader.read(case_dir)
    img, lab, info = preprocess_case(image, seg, min_size, where=f"case {cid}: ", names=reader.files(case_dir),
                                     relabel=reader.relabel)
    save_case(out_dir, cid, img, lab)
    spacing = nib.affines.voxel_sizes(affine)  # the grid all files of the case share (read_case checks it)
    row = {"case": cid, "x": lab.shape[0], "y": lab.shape[1], "z": lab.shape[2]}
    for a, ax in enumerate("xyz"):
        row[f"orig_{ax}"] = seg.shape[a]
        row[f"bbox_{ax}0"], row[f"bbox_{ax}1"] = info.lo[a], info.hi[a]
        row[f"pad_{ax}0"], row[f"pad_{ax}1"] = info.pad_before[a], info.pad_after[a]
        row[f"spacing_{ax}"] = float(spacing[a])
    counts = [int((lab == k).sum()) for k in range(len(reader.label_names))]
    row.update({f"n_{name}": c for name, c in zip(reader.label_names, counts)})
    return row


def build_preprocessed(raw_dir: str | Path, split_dir: str | Path, out_dir: str | Path, min_size,
                       workers: int = 1, progress: bool = True, reader: Reader = BRATS_READER) -> pd.DataFrame:
    """Preprocess every case named by the split into ``out_dir`` (built in a temp folder, renamed at the end,
    so an error or a kill leaves the previous output or none, never a partial one). Writes ``manifest.csv`` and
    a normalised copy of the split (``split/{train,val,test}.txt``), and for a task other than BraTS its name
    (``task.txt``). Returns the manifest."""
    raw_dir, out_dir = resolve_raw_dir(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise DataError(f"data folder {raw_dir} does not exist; for BraTS 2020 put the case folders there "
                        "(see README), for the phantom run the phantom stage")
    split = read_split(split_dir)
    cases = sorted(c for name in SPLIT_NAMES for c in split[name])
    if reader is BRATS_READER:
        check_case_folders(raw_dir, cases)
    folders = reader.cases(raw_dir)
    check_split_on_disk(split, folders, split_dir, raw_dir)

    with atomic_dir(out_dir) as tmp:
        jobs = [(reader, folders[c], tmp, c, tuple(int(v) for v in min_size)) for c in cases]
        manifest = pd.DataFrame(map_cases(_one, jobs, workers, "preprocess", progress))
        split_of = {c: name for name in SPLIT_NAMES for c in split[name]}
        manifest.insert(1, "split", manifest["case"].map(split_of))
        manifest.to_csv(tmp / MANIFEST, index=False)
        write_split(tmp / "split", split)
        if reader.task != BRATS_READER.task:
            (tmp / TASK_FILE).write_text(reader.task + "\n")
    return manifest
