"""The five metrics of the MICCAI 2017 WMH Segmentation Challenge, computed per scan as the organisers'
evaluation script computes them (``docs/wmh.md``, section Metrics, cites the script and lists what we define where it
is undefined).

Inputs are numpy arrays in the image's index order (nibabel's ``i, j, k``; the slice axis of the challenge data is
``k``) and the image's 4x4 index-to-world affine.

- Masking: the reference is ``label == 1``; voxels where the reference is 2 ("other pathology") are removed from
  the prediction before any metric. A float prediction is binarised at >= 0.5, an integer one at >= 1. (The script
  selects those labels with ITK thresholds 0.5-1.5 and 1.5-2.5, which ITK casts to the reference's pixel type: they
  only mean "== 1" and "== 2" for a float-typed reference. We compare label values, whatever the type.)
- Dice: 2|A∩B| / (|A| + |B|) of the masked binary masks (the script's ``1 - scipy dice dissimilarity``;
  ``dcseg.metrics.dice``, the one Dice of the project).
- HD95 (mm): boundaries are the mask minus its erosion by a full 3x3 square in the ``i, j`` plane (ITK's ball of
  radius (1, 1, 0); outside the image counts as foreground, ITK's default, so a mask touching the border keeps
  that side), mapped to world coordinates by the affine; HD95 = the larger of the two directed 95th percentiles
  (numpy's linear interpolation) of nearest-neighbour distances.
- AVD (%): |V_ref - V_pred| / V_ref x 100, in voxels.
- Lesion recall: the 26-connected components of the reference; recall = (reference components the prediction
  touches) / (reference components).
- Lesion F1: the script's precision is (reference components touched) / (prediction components), which is not
  the usual lesion precision (it exceeds 1 when one predicted blob touches several reference lesions); kept as is,
  because the challenge ranked with it. F1 = 2PR / (P + R).

Empty masks (the script divides by zero): both empty -> Dice 1, HD95 0, AVD 0, recall 1, F1 1; prediction empty
-> Dice 0, HD95 = the image diagonal (as ``dcseg.metrics.hd95`` does for BraTS), recall 0, F1 0 (AVD is 100 by its
formula); reference empty, prediction not -> Dice 0, HD95 = the diagonal, AVD undefined (NaN, left out of means),
recall undefined (NaN), F1 0.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from dcseg.metrics import dice, image_diagonal_mm

WMH_LABEL = 1
OTHER_PATHOLOGY_LABEL = 2  # excluded from training losses and scoring
WMH_METRICS = ("dice", "hd95", "avd", "recall", "f1")

_IN_PLANE_SQUARE = np.ones((3, 3, 1), bool)  # ITK BinaryErode radius (1, 1, 0), ball kernel: the full 3x3
FULLY_CONNECTED = np.ones((3, 3, 3), bool)  # ITK ConnectedComponent SetFullyConnected(True): 26 neighbours


def binarise_prediction(prediction: np.ndarray) -> np.ndarray:
    """The script's binarisation: integer images at >= 1, float images at >= 0.5."""
    prediction = np.asarray(prediction)
    if np.issubdtype(prediction.dtype, np.bool_):
        return prediction.copy()
    if np.issubdtype(prediction.dtype, np.integer):
        return prediction >= 1
    return prediction >= 0.5


def masked_pair(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference WMH mask, prediction mask without the reference's label-2 voxels)."""
    reference, prediction = np.asarray(reference), np.asarray(prediction)
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} != prediction shape {prediction.shape}")
    if reference.ndim != 3:
        raise ValueError(f"expected 3-D label maps, got shape {reference.shape}")
    unexpected = sorted(set(np.unique(reference).tolist()) - {0, WMH_LABEL, OTHER_PATHOLOGY_LABEL})
    if unexpected:
        raise ValueError(f"reference label values {unexpected} outside {{0, 1, 2}} (background, WMH, other pathology)")
    ref = reference == WMH_LABEL
    pred = binarise_prediction(prediction) & (reference != OTHER_PATHOLOGY_LABEL)
    return ref, pred


def boundary(mask: np.ndarray) -> np.ndarray:
    """The mask minus its in-plane erosion (the script's 2-D edge), outside the image counting as foreground."""
    if mask.ndim != 3:
        raise ValueError(f"expected a 3-D mask, got shape {mask.shape}")
    return mask & ~ndimage.binary_erosion(mask, structure=_IN_PLANE_SQUARE, border_value=1)


def _edge(mask: np.ndarray) -> np.ndarray:
    """``boundary``, or the mask itself where it fills whole slices and so has no in-plane edge (the script's
    KD-tree fails on that empty set)."""
    edge = boundary(mask)
    return edge if edge.any() else mask


def world_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the mask's voxels, [N, 3]."""
    index = np.argwhere(mask).astype(float)
    return index @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]


def wmh_hd95(ref: np.ndarray, pred: np.ndarray, affine: np.ndarray, empty_distance: float | None = None) -> float:
    """The challenge's HD95 (mm) of two boolean masks (reference first; the module docstring says how).
    ``empty_distance``: the value when exactly one mask is empty (the original image's diagonal; default: the
    diagonal of these masks' grid)."""
    if not ref.any() and not pred.any():
        return 0.0
    if not ref.any() or not pred.any():
        if empty_distance is not None:
            return float(empty_distance)
        return image_diagonal_mm(ref.shape, nib.affines.voxel_sizes(np.asarray(affine, float)))
    a, b = world_points(_edge(ref), affine), world_points(_edge(pred), affine)
    to_a = cKDTree(a).query(b, k=1)[0]
    to_b = cKDTree(b).query(a, k=1)[0]
    return float(max(np.percentile(to_a, 95), np.percentile(to_b, 95)))


def avd(ref: np.ndarray, pred: np.ndarray) -> float:
    v_ref, v_pred = int(ref.sum()), int(pred.sum())
    if v_ref == 0:
        return 0.0 if v_pred == 0 else math.nan
    return abs(v_ref - v_pred) / v_ref * 100.0


def lesion_detection(ref: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(lesion recall, lesion F1) with the script's definitions (module docstring)."""
    components, n_ref = ndimage.label(ref, structure=FULLY_CONNECTED)
    n_pred = ndimage.label(pred, structure=FULLY_CONNECTED)[1]
    touched = np.unique(components[pred & ref])
    n_touched = int(np.count_nonzero(touched))
    if n_ref == 0:
        return (1.0, 1.0) if n_pred == 0 else (math.nan, 0.0)
    recall = n_touched / n_ref
    if n_pred == 0:
        return recall, 0.0
    precision = n_touched / n_pred
    f1 = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return recall, f1


def wmh_scores(reference: np.ndarray, prediction: np.ndarray, affine: np.ndarray,
               empty_distance: float | None = None) -> dict[str, float]:
    """The five challenge metrics of one scan, keyed by ``WMH_METRICS`` (``empty_distance``: see ``wmh_hd95``; the
    evaluation passes the original image's diagonal, as for BraTS, because the scored grid is a crop)."""
    ref, pred = masked_pair(reference, prediction)
    recall, f1 = lesion_detection(ref, pred)
    return {"dice": dice(ref, pred), "hd95": wmh_hd95(ref, pred, affine, empty_distance), "avd": avd(ref, pred),
            "recall": recall, "f1": f1}


__all__ = ["WMH_METRICS", "WMH_LABEL", "OTHER_PATHOLOGY_LABEL", "FULLY_CONNECTED", "wmh_scores", "masked_pair",
           "boundary", "wmh_hd95", "lesion_detection", "avd", "binarise_prediction"]
