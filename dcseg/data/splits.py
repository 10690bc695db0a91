"""Train / val / test splits: one case id per line in ``<split_dir>/{train,val,test}.txt``.

BraTS 2020 uses the 219/50/100 split of RFNet and DC-Seg (committed in ``splits/brats2020``; its lines carry
RFNet's ``HG_``/``LG_`` prefix, which is stripped on reading). Any other dataset gets a seeded split in the same
proportions, written to files and committed. A split that names a case not on disk is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dcseg.io import write_text_atomic
from dcseg.data.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
# BraTS 2020 proportions used by RFNet and DC-Seg.
REFERENCE_PROPORTIONS = (219, 50, 100)
_GRADE_PREFIX = re.compile(r"^(HG|LG)_")


def normalise_case_id(line: str) -> str:
    """``HG_BraTS20_Training_001`` -> ``BraTS20_Training_001`` (RFNet prefixes the tumour grade)."""
    return _GRADE_PREFIX.sub("", line.strip())


def split_sizes(n: int, proportions=REFERENCE_PROPORTIONS) -> tuple[int, int, int]:
    """Sizes of train/val/test for ``n`` cases in the given proportions; val and test get >= 1 when n >= 3."""
    total = sum(proportions)
    n_val = int(round(n * proportions[1] / total))
    n_test = int(round(n * proportions[2] / total))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    return n - n_val - n_test, n_val, n_test


def make_split(case_ids, seed: int, proportions=REFERENCE_PROPORTIONS) -> dict[str, list[str]]:
    """A seeded random split of ``case_ids`` in ``proportions``; each list sorted."""
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val, _ = split_sizes(len(ids), proportions)
    parts = np.split(order, [n_train, n_train + n_val])
    return {name: sorted(ids[i] for i in part) for name, part in zip(SPLIT_NAMES, parts)}


def write_split(split_dir: str | Path, split: dict[str, list[str]], header: str = "") -> None:
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_NAMES:
        path = split_dir / f"{name}.txt"
        write_text_atomic(path, "".join(f"{c}\n" for c in split[name]))


def read_split(split_dir: str | Path) -> dict[str, list[str]]:
    """Read ``train/val/test.txt``; ids normalised; duplicates or overlaps between sets are errors."""
    split_dir = Path(split_dir)
    split = {}
    for name in SPLIT_NAMES:
        path = split_dir / f"{name}.txt"
        if not path.is_file():
            raise DataError(f"split file {path} is missing; expected {', '.join(f'{n}.txt' for n in SPLIT_NAMES)} "
                            f"in {split_dir}")
        ids = [normalise_case_id(line) for line in path.read_text().splitlines() if line.strip()]
        dup = sorted({c for c in ids if ids.count(c) > 1})
        if dup:
            raise DataError(f"split file {path} lists {dup[:5]} more than once")
        split[name] = sorted(ids)
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            both = sorted(set(split[a]) & set(split[b]))
            if both:
                raise DataError(f"split {split_dir}: {both[:5]} are in both {a}.txt and {b}.txt")
    return split


def check_split_on_disk(split: dict[str, list[str]], available, split_dir: str | Path, data_dir: str | Path) -> None:
    """Every case of the split must exist on disk: a missing case is an error, never a silent drop."""
    available = set(available)
    for name in SPLIT_NAMES:
        missing = [c for c in split[name] if c not in available]
        if missing:
            raise DataError(f"split {Path(split_dir) / (name + '.txt')} names {len(missing)} case(s) not found in "
                            f"{data_dir}: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
