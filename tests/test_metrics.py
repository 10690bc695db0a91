import math

import numpy as np
import pytest
from medpy.metric.binary import hd95 as medpy_hd95

from dcseg.tasks import BRATS
from dcseg.metrics import (REGIONS, dice, hd95, image_diagonal_mm, mm3_to_voxels,
                           remove_small_et)

BRATS_DIAGONAL = 373.12866  # sqrt(240^2 + 240^2 + 155^2), nnU-Net v1's BraTS 2020 value


def _cube(shape, lo, size):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, a + size) for a in lo)] = True
    return m


def test_regions_are_brats_nested_sets():
    label = np.array([0, 1, 2, 3])
    regions = BRATS.region_masks(label)
    assert tuple(regions) == REGIONS == ("WT", "TC", "ET")
    assert regions["WT"].tolist() == [False, True, True, True]
    assert regions["TC"].tolist() == [False, True, False, True]
    assert regions["ET"].tolist() == [False, False, False, True]


def test_dice_hand_cases():
    empty = np.zeros((3, 3, 3), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    assert dice(empty, empty) == 1.0  # BraTS: both empty is a perfect score
    assert dice(one, empty) == 0.0 and dice(empty, one) == 0.0
    a, b = empty.copy(), empty.copy()
    a[0, 0, :2] = True  # 2 voxels
    b[0, 0, 1:] = True  # 2 voxels, 1 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0


def test_hd95_empty_conventions():
    empty = np.zeros((5, 5, 5), bool)
    blob = _cube((5, 5, 5), (1, 1, 1), 2)
    assert hd95(empty, empty, (1, 1, 1), BRATS_DIAGONAL) == 0.0
    assert hd95(blob, empty, (1, 1, 1), BRATS_DIAGONAL) == BRATS_DIAGONAL
    assert hd95(empty, blob, (1, 1, 1), BRATS_DIAGONAL) == BRATS_DIAGONAL
    assert image_diagonal_mm((240, 240, 155), (1, 1, 1)) == pytest.approx(BRATS_DIAGONAL, abs=1e-5)
    assert image_diagonal_mm((10, 20, 5), (2.0, 0.5, 4.0)) == pytest.approx(math.sqrt(20**2 + 10**2 + 20**2))


@pytest.mark.parametrize("axis, spacing", [(0, (1.0, 1.0, 1.0)), (0, (1.5, 1.0, 0.8)), (2, (1.0, 0.7, 2.5))])
def test_hd95_of_a_shifted_cube(axis, spacing):
    # A 4^3 cube and a copy shifted by 2 voxels along `axis`. Border voxels (6-connected erosion) of one cube:
    # 24 lie on the other's border (distance 0), 16 are 1 voxel from it, 16 (the far face) are 2 voxels away
    # along `axis`. The 95th percentile of each direction's 56 distances is the far face's: 2 * spacing[axis].
    shape = (14, 14, 14)
    gt = _cube(shape, (4, 4, 4), 4)
    lo = [4, 4, 4]
    lo[axis] += 2
    pred = _cube(shape, lo, 4)
    expected = 2 * spacing[axis]
    assert hd95(pred, gt, spacing, BRATS_DIAGONAL) == pytest.approx(expected)
    assert medpy_hd95(pred, gt, voxelspacing=spacing) == pytest.approx(expected)


def test_hd95_of_parallel_plates_is_their_distance():
    gt, pred = np.zeros((12, 8, 8), bool), np.zeros((12, 8, 8), bool)
    gt[2, 1:7, 1:7] = True
    pred[5, 1:7, 1:7] = True  # 3 voxels away along x: every voxel's nearest partner is straight across
    assert hd95(pred, gt, (2.0, 1.0, 0.5), BRATS_DIAGONAL) == pytest.approx(6.0)


def test_hd95_matches_medpy_on_random_blobs_with_anisotropic_spacing():
    # hd95 crops to the masks' union before calling medpy; the result must equal medpy on the full volume,
    # including masks that touch the volume's edge.
    rng = np.random.default_rng(3)
    spacing = (1.2, 0.9, 2.0)
    for _ in range(4):
        shape = (20, 24, 16)
        a = rng.random(shape) > 0.97
        b = rng.random(shape) > 0.97
        a[5:9, 6:12, 0:4] = True  # touches the z = 0 face
        b[0:3, 18:24, 10:16] = True  # touches three faces
        assert hd95(a, b, spacing, BRATS_DIAGONAL) == pytest.approx(medpy_hd95(a, b, voxelspacing=spacing))


def test_mm3_to_voxels():
    assert mm3_to_voxels(500, (1, 1, 1)) == 500
    assert mm3_to_voxels(500, (2.0, 2.0, 2.0)) == 62.5
    assert mm3_to_voxels(500, (1.0, 0.5, 2.5)) == pytest.approx(400.0)
    with pytest.raises(ValueError, match="spacing"):
        mm3_to_voxels(500, (1, 0, 1))


def test_remove_small_et_relabels_a_small_et_to_ncr():
    label = np.zeros((10, 10, 10), np.uint8)
    label[1:4, 1:4, 1:4] = 2
    label[2, 2, 2:4] = 3  # 2 ET voxels
    label[7, 7, 7:9] = 3  # 2 more, another component: 4 in total
    kept = remove_small_et(label, 4)  # not below the threshold: unchanged, whatever the component sizes
    assert np.array_equal(kept, label) and kept is not label
    removed = remove_small_et(label, 5)
    assert (removed == 3).sum() == 0
    assert (removed == 1).sum() == 4 and removed[2, 2, 2] == 1 and removed[7, 7, 8] == 1
    assert (label == 3).sum() == 4  # input untouched
    assert removed.dtype == label.dtype
    before, after = BRATS.region_masks(label), BRATS.region_masks(removed)
    for region in ("WT", "TC"):  # relabelling ET as NCR keeps WT and TC: it only deletes ET
        assert np.array_equal(before[region], after[region])
    assert remove_small_et(label, 62.5).sum() == removed.sum()  # fractional thresholds (mm^3 / voxel volume)
