"""The WMH challenge's five metrics on small masks whose answers are worked out by hand (dcseg/wmh_metrics.py)."""

import math

import numpy as np
import pytest

from dcseg.wmh_metrics import avd, binarise_prediction, boundary, lesion_detection, masked_pair, wmh_hd95, wmh_scores

UNIT = np.eye(4)


def _line(values) -> np.ndarray:
    """A [N, 3, 1] volume holding ``values`` along i at j = 1, background around it in the plane (so no voxel of the
    line has the image border as in-plane neighbour)."""
    volume = np.zeros((len(values), 3, 1), np.asarray(values).dtype)
    volume[:, 1, 0] = values
    return volume


def test_label_2_is_removed_from_the_prediction_and_every_metric_follows_by_hand():
    reference = _line([0, 1, 1, 0, 2, 2, 0, 0])
    prediction = _line([0, 1, 0, 0, 1, 1, 1, 0]).astype(np.uint8)
    ref, pred = masked_pair(reference, prediction)
    assert np.flatnonzero(ref[:, 1, 0]).tolist() == [1, 2]
    assert np.flatnonzero(pred[:, 1, 0]).tolist() == [1, 6]  # the two label-2 voxels dropped
    scores = wmh_scores(reference, prediction, UNIT)
    assert scores["dice"] == pytest.approx(2 * 1 / (2 + 2))
    assert scores["avd"] == 0.0  # 2 voxels each
    # one reference lesion (voxels 1-2), touched; two predicted blobs ({1}, {6}): P = 1/2, R = 1, F1 = 2/3
    assert scores["recall"] == 1.0 and scores["f1"] == pytest.approx(2 / 3)
    # every voxel is in-plane edge; prediction -> reference distances 0 and 4, reference -> prediction 0 and 1
    # 95th percentiles (linear): 0 + 0.95 * 4 = 3.8 and 0.95; HD95 = 3.8
    assert scores["hd95"] == pytest.approx(3.8)


def test_binarisation_float_at_one_half_integer_at_one():
    assert binarise_prediction(np.array([0.49, 0.5, 0.9])).tolist() == [False, True, True]
    assert binarise_prediction(np.array([0, 1, 3], np.int16)).tolist() == [False, True, True]
    assert binarise_prediction(np.array([False, True])).tolist() == [False, True]


def test_boundary_is_the_in_plane_edge_and_the_image_border_counts_as_foreground():
    square = np.zeros((7, 7, 3), bool)
    square[1:6, 1:6, 1] = True  # a 5 x 5 square in one slice: its edge is the 16-voxel ring (3 x 3 square kernel)
    edge = boundary(square)
    assert edge.sum() == 16 and not edge[2:5, 2:5, 1].any()
    bump = square.copy()
    bump[3, 3, 0] = True  # a voxel of another slice: no in-plane neighbours, so it is edge; the square unchanged
    assert boundary(bump).sum() == 17
    # a block touching the border at i = 0: only its side facing the image keeps an edge (row i = 2)
    block = np.zeros((5, 5, 1), bool)
    block[0:3, :, 0] = True
    assert np.argwhere(boundary(block))[:, 0].tolist() == [2] * 5


def test_hd95_in_world_millimetres_with_anisotropic_slices():
    ref = np.zeros((7, 7, 4), bool)
    ref[1:6, 1:6, 0] = True
    pred = np.roll(ref, 2, axis=2)  # the same square two slices up
    affine = np.diag([0.96, 0.96, 3.0, 1.0])
    assert wmh_hd95(ref, pred, affine) == pytest.approx(6.0)  # every edge point is 2 x 3 mm from its counterpart
    # one far detection among ten matched ones: directed 95th percentile = 0.5 x its distance (positions 9 and 10
    # of 11 sorted values, 0.95 x 10 = 9.5), the other direction 0
    ref = np.zeros((40, 1, 1), bool)
    ref[0:20:2] = True
    pred = ref.copy()
    pred[39] = True
    assert wmh_hd95(ref, pred, UNIT) == pytest.approx(0.5 * (39 - 18))


def test_lesion_counts_use_26_connectivity_and_the_scripts_precision():
    ref = np.zeros((3, 3, 3), bool)
    ref[0, 0, 0] = ref[1, 1, 1] = True  # diagonal neighbours: one lesion
    assert lesion_detection(ref, ref) == (1.0, 1.0)
    ref = np.zeros((5, 1, 1), bool)
    ref[0] = ref[2] = True  # two lesions ...
    pred = np.zeros_like(ref)
    pred[0:3] = True  # ... both touched by one predicted blob: P = 2 / 1 (the script's definition), R = 1
    recall, f1 = lesion_detection(ref, pred)
    assert recall == 1.0 and f1 == pytest.approx(2 * 2 * 1 / (2 + 1))
    pred = np.zeros_like(ref)
    pred[4] = True  # a miss: R = 0, P = 0
    assert lesion_detection(ref, pred) == (0.0, 0.0)


def test_avd_is_a_percentage_of_the_reference_volume():
    ref = np.zeros(10, bool)
    ref[:4] = True
    pred = np.zeros(10, bool)
    pred[:5] = True
    assert avd(ref, pred) == pytest.approx(25.0)
    assert avd(ref, np.zeros(10, bool)) == 100.0


def test_empty_masks_follow_the_documented_conventions():
    empty = np.zeros((4, 4, 2), np.uint8)
    lesion = empty.copy()
    lesion[1, 1, 0] = 1
    diagonal = math.sqrt(4 ** 2 + 4 ** 2 + (2 * 3.0) ** 2)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    assert wmh_scores(empty, empty, affine) == {"dice": 1.0, "hd95": 0.0, "avd": 0.0, "recall": 1.0, "f1": 1.0}
    missed = wmh_scores(lesion, empty, affine)
    assert missed == {"dice": 0.0, "hd95": pytest.approx(diagonal), "avd": 100.0, "recall": 0.0, "f1": 0.0}
    false_alarm = wmh_scores(empty, lesion, affine)
    assert false_alarm["dice"] == 0.0 and false_alarm["hd95"] == pytest.approx(diagonal)
    assert math.isnan(false_alarm["avd"]) and math.isnan(false_alarm["recall"]) and false_alarm["f1"] == 0.0
    # a prediction only inside label 2 is no prediction at all
    other = empty.copy()
    other[2, 2, 1] = 2
    assert wmh_scores(other, (other == 2).astype(np.uint8), affine)["dice"] == 1.0


def test_shape_mismatch_and_unknown_labels_are_refused():
    with pytest.raises(ValueError, match=r"reference shape \(3, 3, 1\) != prediction shape \(4, 3, 1\)"):
        wmh_scores(_line([0, 1, 0]), _line([0, 1, 0, 0]), UNIT)
    with pytest.raises(ValueError, match=r"reference label values \[4\] outside"):
        wmh_scores(_line([0, 4, 0]), _line([0, 1, 0]), UNIT)
    with pytest.raises(ValueError, match="expected 3-D label maps"):
        wmh_scores(np.zeros((3, 3)), np.zeros((3, 3)), UNIT)
