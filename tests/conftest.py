"""Shared fixtures: small BraTS-layout cases written as real NIfTI files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from dcseg.data.brats import MODALITIES
from dcseg.data.dataset import build_preprocessed
from dcseg.data.splits import write_split

REPO = Path(__file__).resolve().parent.parent


def make_arrays(shape=(12, 14, 10), seed=0):
    """A small 'brain' (a box of positive intensities inside a zero background) and a seg with all labels."""
    rng = np.random.default_rng(seed)
    image = np.zeros((4,) + shape, np.float32)
    brain = (slice(2, shape[0] - 3), slice(3, shape[1] - 2), slice(1, shape[2] - 1))
    for k in range(4):
        image[(k,) + brain] = rng.uniform(50, 500, size=image[(k,) + brain].shape).round()
    seg = np.zeros(shape, np.uint8)
    seg[4:8, 5:9, 3:7] = 2
    seg[5:7, 6:8, 4:6] = 1
    seg[5, 6, 4] = 4
    seg[6, 7, 5] = 4
    return image, seg


def write_case(root: Path, case: str, image, seg, affine=None, suffix=".nii.gz", dtype=np.int16,
               seg_dtype=np.uint8, seg_name=None) -> Path:
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    d = root / case
    d.mkdir(parents=True, exist_ok=True)
    for k, mod in enumerate(MODALITIES):
        nib.save(nib.Nifti1Image(image[k].astype(dtype), affine), str(d / f"{case}_{mod}{suffix}"))
    nib.save(nib.Nifti1Image(seg.astype(seg_dtype), affine), str(d / (seg_name or f"{case}_seg{suffix}")))
    return d


@pytest.fixture
def case_arrays():
    return make_arrays()


@pytest.fixture
def brats_case(tmp_path, case_arrays):
    image, seg = case_arrays
    return write_case(tmp_path, "BraTS20_Training_007", image, seg), image, seg


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Five small preprocessed cases (train 3 / val 1 / test 1) padded to 32^3, for training tests."""
    root = tmp_path_factory.mktemp("tiny")
    ids = [f"BraTS20_Training_{i:03d}" for i in range(1, 6)]
    for i, c in enumerate(ids):
        write_case(root / "raw", c, *make_arrays((20, 22, 18), seed=i))
    write_split(root / "split", {"train": ids[:3], "val": ids[3:4], "test": ids[4:]})
    build_preprocessed(root / "raw", root / "split", root / "pre", min_size=(32, 32, 32), progress=False)
    return root / "pre"


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first: under ``pytest -n auto --dist loadgroup`` (scripts/test.sh), which hands
    out one test at a time, each starts on a worker of its own at once instead of ending the run alone, so the suite
    takes about as long as its longest test, not the sum."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise


GOLDEN = Path(__file__).resolve().parent / "data" / "golden"  # outputs of the reference code (docs/reference.md)


def load_golden(name: str) -> dict[str, np.ndarray]:
    """A golden fixture, ``tests/data/golden/NAME.npz``, as a dict of arrays."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (a small shared machine); the previous count is restored after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
