"""The segmentation tasks: what the whole path reads of a dataset -- its modalities (M), subsets, label set, scored
regions and ignored label -- so that no BraTS constant leaks into the two-modality WMH path (paper Table 3).

- ``BRATS``: FLAIR, T1ce, T1, T2 (M = 4); the 15 subsets; 4 classes after preprocessing (0 background, 1 NCR/NET,
  2 edema, 3 enhancing); regions WT, TC, ET (``dcseg.metrics``); nothing ignored.
- ``WMH``: FLAIR, T1 (M = 2); the 3 subsets; 2 classes (0 background, 1 WMH); region WMH; label 2 (the challenge's
  "other pathology") ignored by every loss term and by the scoring (``dcseg.wmh_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcseg.data.brats import MODALITIES
from dcseg.data.errors import DataError
from dcseg.data.wmh import WMH_MODALITIES
from dcseg.metrics import REGION_LABELS
from dcseg.subsets import SUBSETS, WMH_SUBSETS, Subset
from dcseg.wmh_metrics import OTHER_PATHOLOGY_LABEL, WMH_LABEL


@dataclass(frozen=True)
class Task:
    name: str
    modalities: tuple[str, ...]           # channel order
    subsets: tuple[Subset, ...]           # table order
    num_classes: int                      # network outputs (class 0 = background)
    regions: dict[str, tuple[int, ...]] = field(hash=False)  # scored region -> class indices
    ignore_label: int | None = None       # stored label excluded from the losses and the scoring

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def masks(self) -> tuple[tuple[bool, ...], ...]:
        return tuple(s.mask for s in self.subsets)

    def region_masks(self, labels: np.ndarray, reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Boolean masks of the scored regions of a label map. With ``reference`` (the true labels) and an ignored
        label, voxels the reference ignores are removed (the WMH challenge's masking of label 2 from the
        prediction)."""
        labels = np.asarray(labels)
        masks = {region: np.isin(labels, classes) for region, classes in self.regions.items()}
        if reference is not None and self.ignore_label is not None:
            keep = np.asarray(reference) != self.ignore_label
            masks = {region: mask & keep for region, mask in masks.items()}
        return masks


BRATS = Task("brats", MODALITIES, SUBSETS, 4, dict(REGION_LABELS))
WMH = Task("wmh", WMH_MODALITIES, WMH_SUBSETS, 2, {"WMH": (WMH_LABEL,)}, ignore_label=OTHER_PATHOLOGY_LABEL)
TASKS = {task.name: task for task in (BRATS, WMH)}


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]


TASK_FILE = "task.txt"  # in a preprocessed store of another task than BraTS: its name (a BraTS store has none, so
# the stores and model files of the BraTS runs are unchanged)


def task_of(preprocessed_dir: str | Path) -> Task:
    """The task of a preprocessed store: the one its ``task.txt`` names, BraTS without one."""
    path = Path(preprocessed_dir) / TASK_FILE
    if not path.is_file():
        return BRATS
    name = path.read_text().strip()
    if name not in TASKS:
        raise DataError(f"{path} names task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]
