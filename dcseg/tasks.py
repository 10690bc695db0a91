"""The segmentation tasks: what the whole path reads of a dataset -- its modalities (M), subsets, label set, scored
regions and ignored label -- so that no BraTS constant leaks into the two-modality WMH path (paper Table 3).

- ``BRATS``: FLAIR, T1ce, T1, T2 (M = 4); the 15 subsets; 4 classes after preprocessing (0 background, 1 NCR/NET,
  2 edema, 3 enhancing); regions WT, TC, ET (``dcseg.metrics``); nothing ignored.
- ``WMH``: FLAIR, T1 (M = 2); the 3 subsets; 2 classes (0 background, 1 WMH); region WMH; label 2 (the challenge's
  "other pathology") ignored by every loss term and by the scoring (``dcseg.wmh_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dcseg.data.brats import MODALITIES
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


BRATS = Task("brats", MODALITIES, SUBSETS, 4, dict(REGION_LABELS))
WMH = Task("wmh", WMH_MODALITIES, WMH_SUBSETS, 2, {"WMH": (WMH_LABEL,)}, ignore_label=OTHER_PATHOLOGY_LABEL)
TASKS = {task.name: task for task in (BRATS, WMH)}


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]
