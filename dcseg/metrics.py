"""BraTS region metrics: the one definition of regions, Dice, HD95 and the ET post-processing used everywhere.

Conventions (``docs/reference.md`` §Evaluation):
- labels after preprocessing: 0 background, 1 NCR/NET, 2 edema, 3 enhancing (BraTS 4);
  regions WT = {1, 2, 3}, TC = {1, 3}, ET = {3};
- Dice: both masks empty -> 1, exactly one empty -> 0 (BraTS, nnU-Net v1, RFNet's eps = 1e-8 in the limit);
- HD95 (mm): medpy's 95th percentile of the pooled symmetric surface distances; both empty -> 0, exactly one
  empty -> the diagonal of the original image grid (373.13 mm for BraTS 240 x 240 x 155 at 1 mm), as nnU-Net v1's
  BraTS 2020 evaluation does;
- ET post-processing: a predicted ET whose total volume is below a threshold (RFNet/mmFormer: 500 voxels at 1 mm)
  becomes NCR (M3AE, nnU-Net). WT and TC are unchanged by this, so it equals deleting ET for every region metric.
"""

from __future__ import annotations

import math

import numpy as np
from medpy.metric.binary import hd95 as medpy_hd95

REGIONS = ("WT", "TC", "ET")
REGION_LABELS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
NCR_LABEL = 1
ET_LABEL = 3

# what the evaluation scores per (case, subset, region), and the columns of metrics/<run>_cases.csv
METRICS = ("dice", "dice_post", "hd95")
CASE_COLUMNS = ("case", "subset", "region") + METRICS


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks with the BraTS convention for empty masks (both empty: 1, one empty: 0)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    n_pred, n_gt = int(pred.sum()), int(gt.sum())
    if n_pred + n_gt == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / (n_pred + n_gt)


def image_diagonal_mm(shape, spacing) -> float:
    """Length in mm of the diagonal of an image grid of ``shape`` voxels of size ``spacing``."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union plus one voxel: HD95 needs the same surfaces and
    exact Euclidean distances only, which this keeps (the margin keeps medpy's border erosion identical), and the
    distance transform then runs on the tumour's box instead of the whole volume."""
    union = pred | gt
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(int(idx[0]) - 1, 0), int(idx[-1]) + 2))
    box = tuple(box)
    return pred[box], gt[box]


def hd95(pred: np.ndarray, gt: np.ndarray, spacing, empty_distance: float) -> float:
    """95th-percentile Hausdorff distance in mm between two boolean masks (medpy), with the BraTS convention for
    empty masks: both empty -> 0, exactly one empty -> ``empty_distance`` (the original image's diagonal,
    see ``image_diagonal_mm``)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    pred_empty, gt_empty = not pred.any(), not gt.any()
    if pred_empty and gt_empty:
        return 0.0
    if pred_empty or gt_empty:
        return float(empty_distance)
    pred, gt = _crop_to_union(pred, gt)
    return float(medpy_hd95(pred, gt, voxelspacing=tuple(float(s) for s in spacing)))


def mm3_to_voxels(volume_mm3: float, spacing) -> float:
    """A volume in mm^3 as a (fractional) number of voxels of size ``spacing`` (mm per axis)."""
    voxel_volume = math.prod(float(s) for s in spacing)
    if voxel_volume <= 0:
        raise ValueError(f"voxel spacing {tuple(spacing)} must be positive")
    return float(volume_mm3) / voxel_volume


def remove_small_et(label: np.ndarray, min_voxels: float) -> np.ndarray:
    """Label map with every ET voxel relabelled NCR when the predicted ET has fewer than ``min_voxels`` voxels in
    total (all components together, as the references count it). Returns a new array; ``label`` is not changed."""
    label = np.asarray(label)
    et = label == ET_LABEL
    if int(et.sum()) < min_voxels:
        return np.where(et, np.asarray(NCR_LABEL, label.dtype), label)
    return label.copy()


__all__ = ["REGIONS", "dice", "hd95", "image_diagonal_mm", "mm3_to_voxels", "remove_small_et"]
