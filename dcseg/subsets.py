"""The non-empty subsets of a dataset's modalities: the one definition used by training, evaluation and reports.

BraTS (``SUBSETS``): the 15 subsets of the four MRI modalities, in the paper's Table 1 row order (and RFNet's train.py
mask order): single modalities, then pairs, triples, all four; masks in ``dcseg.data.brats.MODALITIES`` channel order
(FLAIR, T1ce, T1, T2). WMH (``WMH_SUBSETS``): the 3 subsets of FLAIR and T1 in the paper's Table 3 row order (T1,
FLAIR, both); masks in ``dcseg.data.wmh.WMH_MODALITIES`` order (FLAIR, T1).
"""

from __future__ import annotations

from dataclasses import dataclass

from dcseg.data.brats import MODALITIES
from dcseg.data.wmh import WMH_MODALITIES

# Display names used in tables, in MODALITIES order.
MODALITY_LABELS = {"flair": "FLAIR", "t1ce": "T1ce", "t1": "T1", "t2": "T2"}


@dataclass(frozen=True)
class Subset:
    """A non-empty set of available modalities."""

    modalities: tuple[str, ...]  # in ``order``
    order: tuple[str, ...] = MODALITIES  # the dataset's channel order

    @property
    def mask(self) -> tuple[bool, ...]:
        return tuple(m in self.modalities for m in self.order)

    @property
    def name(self) -> str:
        """Stable machine name, e.g. ``flair+t1ce``."""
        return "+".join(self.modalities)

    @property
    def label(self) -> str:
        """Human name for tables, e.g. ``FLAIR+T1ce``."""
        return "+".join(MODALITY_LABELS[m] for m in self.modalities)


def _subset(*mods: str, order: tuple[str, ...] = MODALITIES) -> Subset:
    return Subset(tuple(m for m in order if m in mods), order)


# Paper Table 1 row order.
SUBSETS: tuple[Subset, ...] = (
    _subset("t2"),
    _subset("t1ce"),
    _subset("t1"),
    _subset("flair"),
    _subset("t1ce", "t2"),
    _subset("t1", "t1ce"),
    _subset("flair", "t1"),
    _subset("t1", "t2"),
    _subset("flair", "t2"),
    _subset("flair", "t1ce"),
    _subset("flair", "t1", "t1ce"),
    _subset("flair", "t1", "t2"),
    _subset("flair", "t1ce", "t2"),
    _subset("t1", "t1ce", "t2"),
    _subset("flair", "t1", "t1ce", "t2"),
)

# Paper Table 3 row order.
WMH_SUBSETS: tuple[Subset, ...] = (
    _subset("t1", order=WMH_MODALITIES),
    _subset("flair", order=WMH_MODALITIES),
    _subset("flair", "t1", order=WMH_MODALITIES),
)


def subset_by_name(name: str, subsets: tuple[Subset, ...] = SUBSETS) -> Subset:
    for s in subsets:
        if s.name == name:
            return s
    raise KeyError(f"unknown modality subset {name!r}; expected one of {[s.name for s in subsets]}")
